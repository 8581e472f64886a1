package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config describes one lab.
type Config struct {
	// Dir holds the lab's state: hosts file, manifest, one directory per
	// host with its daemons' data, logs and pid files.
	Dir string
	// Prefix names the namespaces (Prefix+host), the host ends of the veth
	// pairs (the same) and the bridge (Prefix+"br"); at most 5 characters,
	// so every name fits Linux's 15.
	Prefix string
	Hosts  []Host
	// Bin is the reelfs binary, ConsulBin the consul binary, Provision the
	// path of vagrant/provision.sh.
	Bin, ConsulBin, Provision string
	// Env is added to provision.sh's environment (REELFS_CHUNK_FLAGS, ...).
	Env []string
	// ChunkDisk, when above 0, puts each chunk host's directory on a
	// tmpfs of this many bytes: a disk of its own to fill.
	ChunkDisk int64
	// Out gets progress lines.
	Out io.Writer
}

// manifest is what Up made, written before it makes it, so that Down
// removes a half-built lab too.
type manifest struct {
	Prefix string   `json:"prefix"`
	Bridge string   `json:"bridge"`
	Hosts  []string `json:"hosts"`
	Mounts []string `json:"mounts"` // tmpfs and FUSE mount points
}

// Lab is a running netns lab.
type Lab struct {
	cfg Config
	m   manifest
}

const manifestName = "lab.json"

func (c Config) validate() error {
	switch {
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("lab: Dir %q: want an absolute path", c.Dir)
	case c.Prefix == "" || len(c.Prefix) > 5:
		return fmt.Errorf("lab: Prefix %q: want 1-5 characters", c.Prefix)
	case len(c.Hosts) == 0:
		return errors.New("lab: no hosts")
	case c.Bin == "" || c.ConsulBin == "" || c.Provision == "":
		return errors.New("lab: Bin, ConsulBin and Provision are required")
	}
	for _, h := range c.Hosts {
		if len(c.Prefix+h.Name) > 15 {
			return fmt.Errorf("lab: %s%s: longer than an interface name may be", c.Prefix, h.Name)
		}
	}
	return nil
}

// Preflight says why this machine cannot run a lab, or nil.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (network namespaces, veth, mounts)")
	}
	for _, tool := range []string{"ip", "nsenter", "bash", "fusermount3", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("lab: needs %s: %w", tool, err)
		}
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("lab: needs /dev/fuse: %w", err)
	}
	return nil
}

func (l *Lab) logf(format string, args ...any) {
	if l.cfg.Out != nil {
		fmt.Fprintf(l.cfg.Out, "lab: "+format+"\n", args...)
	}
}

// run runs a command and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NS is the namespace name of host.
func (l *Lab) NS(host string) string { return l.cfg.Prefix + host }

// Link is the host end of host's veth pair: set it down to cut the host
// off.
func (l *Lab) Link(host string) string { return l.cfg.Prefix + host }

// HostDir is host's directory (its provision.sh --direct state).
func (l *Lab) HostDir(host string) string { return filepath.Join(l.cfg.Dir, host) }

// chunkDir is a chunk host's block store (provision.sh's state/chunk); its
// logs stay beside it, outside the tmpfs.
func (l *Lab) chunkDir(host string) string { return filepath.Join(l.HostDir(host), "chunk") }

// Mountpoint is the client host's FUSE mount.
func (l *Lab) Mountpoint() string { return filepath.Join(l.HostDir(l.first("client").Name), "mnt") }

// Hosts are the lab's hosts.
func (l *Lab) Hosts() []Host { return l.cfg.Hosts }

func (l *Lab) first(role string) Host {
	for _, h := range l.cfg.Hosts {
		if h.Role == role {
			return h
		}
	}
	return Host{}
}

// MetaList is every metaserver's address, comma separated.
func (l *Lab) MetaList() string {
	var s []string
	for _, h := range l.cfg.Hosts {
		if h.Role == "meta" {
			s = append(s, h.Addr.String()+":9400")
		}
	}
	return strings.Join(s, ",")
}

// HTTPURL is the client host's httpd.
func (l *Lab) HTTPURL() string { return "http://" + l.first("client").Addr.String() + ":9480/" }

// ConsulAddr is the Consul server's HTTP address.
func (l *Lab) ConsulAddr() string { return l.first("consul").Addr.String() + ":8500" }

// Up builds the lab: bridge, namespaces, links, then provisions every host
// in order (consul, metaservers, chunkservers, client) and waits until
// each answers. On an error the caller should still call Down.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	if err := Down(cfg.Dir, cfg.Prefix, cfg.Out); err != nil {
		return nil, err
	}
	// A lab starts empty: the data of an earlier one (a metaserver that
	// remembers chunkservers whose disks are gone) would only confuse it.
	// Only a directory an earlier lab made (it holds the manifest) goes.
	if ents, err := os.ReadDir(cfg.Dir); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(cfg.Dir, manifestName)); err != nil {
			return nil, fmt.Errorf("lab: %s is not empty and holds no %s: not removing it", cfg.Dir, manifestName)
		}
		if err := os.RemoveAll(cfg.Dir); err != nil {
			return nil, err
		}
	}
	l := &Lab{cfg: cfg, m: manifest{Prefix: cfg.Prefix, Bridge: cfg.Prefix + "br"}}
	for _, h := range cfg.Hosts {
		l.m.Hosts = append(l.m.Hosts, h.Name)
		if h.Role == "chunk" && cfg.ChunkDisk > 0 {
			l.m.Mounts = append(l.m.Mounts, l.chunkDir(h.Name))
		}
	}
	l.m.Mounts = append(l.m.Mounts, l.Mountpoint())
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(l.m, "", "  ")
	if err := os.WriteFile(filepath.Join(cfg.Dir, manifestName), b, 0o644); err != nil {
		return nil, err
	}
	var hosts bytes.Buffer
	FormatHosts(&hosts, cfg.Hosts)
	if err := os.WriteFile(l.hostsFile(), hosts.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := l.network(); err != nil {
		return nil, err
	}
	for _, h := range cfg.Hosts {
		if err := os.MkdirAll(l.HostDir(h.Name), 0o755); err != nil {
			return nil, err
		}
		if h.Role == "chunk" && cfg.ChunkDisk > 0 {
			if err := os.MkdirAll(l.chunkDir(h.Name), 0o755); err != nil {
				return nil, err
			}
			if err := run("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(cfg.ChunkDisk, 10), "tmpfs", l.chunkDir(h.Name)); err != nil {
				return nil, err
			}
		}
	}
	for _, role := range []string{"consul", "meta", "chunk", "client"} {
		for _, h := range cfg.Hosts {
			if h.Role != role {
				continue
			}
			if err := l.provision(h.Name, ""); err != nil {
				return nil, err
			}
		}
		if err := l.waitRole(ctx, role); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Lab) hostsFile() string { return filepath.Join(l.cfg.Dir, "hosts") }

// network makes the bridge (with the gateway address, no forwarding or
// NAT), a namespace per host and a veth pair from it to the bridge. The
// namespaces have no default route: nothing leaves the /24.
func (l *Lab) network() error {
	gw := Gateway(l.cfg.Hosts).String() + "/24"
	steps := [][]string{
		{"link", "add", l.m.Bridge, "type", "bridge"},
		{"addr", "add", gw, "dev", l.m.Bridge},
		{"link", "set", l.m.Bridge, "up"},
	}
	for _, h := range l.cfg.Hosts {
		ns, veth := l.NS(h.Name), l.Link(h.Name)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"link", "set", veth, "master", l.m.Bridge, "up"},
			[]string{"-n", ns, "addr", "add", h.Addr.String() + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			return err
		}
	}
	l.logf("bridge %s (%s), %d namespaces %s*", l.m.Bridge, gw, len(l.cfg.Hosts), l.cfg.Prefix)
	return nil
}

// provision runs provision.sh --direct for host inside its network
// namespace (nsenter --net only: the FUSE mount stays visible outside);
// with daemon set, it (re)starts only that daemon.
func (l *Lab) provision(host, daemon string) error {
	args := []string{"--net=/run/netns/" + l.NS(host), "bash", l.cfg.Provision,
		"--hosts", l.hostsFile(), "--bin", l.cfg.Bin, "--consul-bin", l.cfg.ConsulBin, "--direct", l.cfg.Dir}
	if daemon != "" {
		args = append(args, "--start", daemon)
	}
	args = append(args, host)
	cmd := exec.Command("nsenter", args...)
	cmd.Env = append(os.Environ(), l.cfg.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: provision %s %s: %w: %s", host, daemon, err, bytes.TrimSpace(out))
	}
	l.logf("%s", bytes.TrimSpace(out))
	return nil
}

// waitRole waits until every host of role answers.
func (l *Lab) waitRole(ctx context.Context, role string) error {
	var checks []string
	for _, h := range l.cfg.Hosts {
		if h.Role != role {
			continue
		}
		a := h.Addr.String()
		switch role {
		case "consul":
			checks = append(checks, "http://"+a+":8500/v1/status/leader")
		case "meta":
			checks = append(checks, "http://"+a+":9400/v1/health")
		case "chunk":
			checks = append(checks, "http://"+a+":9410/v1/health")
		case "client":
			checks = append(checks, "http://"+a+":9480/-/health")
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, u := range checks {
		for {
			resp, err := hc.Get(u)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && len(body) > 0 && string(body) != `""` {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("lab: %s does not answer after 90s (logs in %s)", u, l.cfg.Dir)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if role == "client" {
		for !isMounted(l.Mountpoint()) {
			if time.Now().After(deadline) {
				return fmt.Errorf("lab: %s not mounted after 90s", l.Mountpoint())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	l.logf("%s up", role)
	return nil
}

// isMounted reports whether dir is a mount point (in this mount namespace).
func isMounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// Pid is the pid of host's daemon, 0 when it does not run.
func (l *Lab) Pid(host, daemon string) int {
	b, err := os.ReadFile(filepath.Join(l.HostDir(host), daemon+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		return 0
	}
	return pid
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// Signal sends sig to host's daemon.
func (l *Lab) Signal(host, daemon string, sig syscall.Signal) error {
	pid := l.Pid(host, daemon)
	if pid == 0 {
		return fmt.Errorf("lab: %s %s does not run", host, daemon)
	}
	return syscall.Kill(pid, sig)
}

// Restart starts host's daemon again (after a kill) the way provision.sh
// started it.
func (l *Lab) Restart(host, daemon string) error {
	if daemon == "mount" {
		exec.Command("fusermount3", "-u", "-z", l.Mountpoint()).Run()
	}
	return l.provision(host, daemon)
}

// SetLink sets host's link up or down.
func (l *Lab) SetLink(host string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run("ip", "link", "set", l.Link(host), state)
}

// Down removes what Up made under dir with prefix: every process in the
// lab's namespaces (SIGCONT, SIGTERM, then SIGKILL after 10 s), the FUSE
// and tmpfs mounts, the namespaces, links and the bridge. It is idempotent
// and keeps dir (with the logs).
func Down(dir, prefix string, out io.Writer) error {
	m := manifest{Prefix: prefix, Bridge: prefix + "br"}
	if b, err := os.ReadFile(filepath.Join(dir, manifestName)); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("lab: %s: %w", manifestName, err)
		}
	}
	// Namespaces named with the prefix are ours too, manifest or not.
	if lst, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(lst), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], m.Prefix) {
				h := strings.TrimPrefix(f[0], m.Prefix)
				if !contains(m.Hosts, h) {
					m.Hosts = append(m.Hosts, h)
				}
			}
		}
	}
	var pids []int
	for _, h := range m.Hosts {
		out, _ := exec.Command("ip", "netns", "pids", m.Prefix+h).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	var errs []error
	for _, mnt := range m.Mounts {
		if !isMounted(mnt) {
			continue
		}
		exec.Command("fusermount3", "-u", "-z", mnt).Run()
		if isMounted(mnt) {
			if err := run("umount", "-l", mnt); err != nil {
				errs = append(errs, err)
			}
		}
	}
	removed := 0
	for _, h := range m.Hosts {
		if _, err := os.Stat("/run/netns/" + m.Prefix + h); err == nil {
			if err := run("ip", "netns", "del", m.Prefix+h); err != nil {
				errs = append(errs, err)
			} else {
				removed++
			}
		}
		// The veth pair goes with its namespace; a pair whose namespace
		// was never made is removed here.
		if exec.Command("ip", "link", "show", m.Prefix+h).Run() == nil {
			errs = append(errs, run("ip", "link", "del", m.Prefix+h))
		}
	}
	if exec.Command("ip", "link", "show", m.Bridge).Run() == nil {
		errs = append(errs, run("ip", "link", "del", m.Bridge))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if out != nil {
		fmt.Fprintf(out, "lab: down: %d processes, %d namespaces %s* removed, no bridge %s left (logs kept in %s)\n",
			len(pids), removed, m.Prefix, m.Bridge, dir)
	}
	return nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
