// Package lab runs the multi-machine lab of vagrant/ as network namespaces
// on one machine: one namespace per host of vagrant/hosts, veth pairs on a
// bridge with no route out, each host provisioned by vagrant/provision.sh
// (--direct: processes instead of systemd units), and a fault-injection
// run (Chaos) that proves nothing acknowledged is lost.
package lab

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Host is one line of the hosts file: a machine of the lab.
type Host struct {
	Name  string
	Addr  netip.Addr
	Role  string // consul, meta, chunk, client
	Group int    // chunk hosts only
}

// Daemons are the daemons provision.sh starts for the host's role.
func (h Host) Daemons() []string {
	switch h.Role {
	case "client":
		return []string{"httpd", "mount"}
	default:
		return []string{h.Role}
	}
}

// ParseHosts reads a hosts file: "name address role group" per line, #
// comments. Every address must be IPv4 in one /24.
func ParseHosts(r io.Reader) ([]Host, error) {
	var hosts []Host
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("lab: hosts line %d: want name address role group, got %q", n, line)
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil || !addr.Is4() {
			return nil, fmt.Errorf("lab: hosts line %d: address %q: want IPv4", n, f[1])
		}
		h := Host{Name: f[0], Addr: addr, Role: f[2]}
		switch h.Role {
		case "consul", "meta", "client":
		case "chunk":
			if h.Group, err = strconv.Atoi(f[3]); err != nil || h.Group < 1 {
				return nil, fmt.Errorf("lab: hosts line %d: chunk group %q", n, f[3])
			}
		default:
			return nil, fmt.Errorf("lab: hosts line %d: unknown role %q", n, h.Role)
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("lab: hosts line %d: host %s twice", n, h.Name)
		}
		seen[h.Name] = true
		if len(hosts) > 0 && subnet(hosts[0].Addr) != subnet(addr) {
			return nil, fmt.Errorf("lab: hosts line %d: %s is not in %s", n, addr, subnet(hosts[0].Addr))
		}
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("lab: no hosts")
	}
	return hosts, nil
}

// subnet is the /24 of addr.
func subnet(addr netip.Addr) netip.Prefix {
	p, _ := addr.Prefix(24)
	return p
}

// Gateway is the bridge's address in the host's namespace: .1 of the
// hosts' /24 (VirtualBox's host-only network gives the host the same).
func Gateway(hosts []Host) netip.Addr {
	a := subnet(hosts[0].Addr).Addr().As4()
	a[3] = 1
	return netip.AddrFrom4(a)
}

// MoveSubnet returns hosts with the third octet of every address set to
// octet: a second lab (the test suite's) beside `make lab`'s.
func MoveSubnet(hosts []Host, octet byte) []Host {
	out := make([]Host, len(hosts))
	for i, h := range hosts {
		a := h.Addr.As4()
		a[2] = octet
		h.Addr = netip.AddrFrom4(a)
		out[i] = h
	}
	return out
}

// FormatHosts writes hosts in the format ParseHosts reads.
func FormatHosts(w io.Writer, hosts []Host) error {
	for _, h := range hosts {
		g := "-"
		if h.Role == "chunk" {
			g = strconv.Itoa(h.Group)
		}
		if _, err := fmt.Fprintf(w, "%-7s %-12s %-7s %s\n", h.Name, h.Addr, h.Role, g); err != nil {
			return err
		}
	}
	return nil
}
