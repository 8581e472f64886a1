package lab

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseHostsOfVagrant(t *testing.T) {
	f, err := os.Open("../vagrant/hosts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hosts, err := ParseHosts(f)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	groups := map[int]int{}
	for _, h := range hosts {
		roles[h.Role]++
		if h.Role == "chunk" {
			groups[h.Group]++
		}
	}
	want := map[string]int{"consul": 1, "meta": 3, "chunk": 6, "client": 1}
	for r, n := range want {
		if roles[r] != n {
			t.Errorf("%d hosts of role %s, want %d", roles[r], r, n)
		}
	}
	if groups[1] != 3 || groups[2] != 3 {
		t.Errorf("groups %v, want 3 members in each of 1 and 2", groups)
	}
	if g := Gateway(hosts).String(); g != "10.77.0.1" {
		t.Errorf("gateway %s", g)
	}
	moved := MoveSubnet(hosts, 9)
	if moved[0].Addr.String() != "10.77.9.10" || hosts[0].Addr.String() != "10.77.0.10" {
		t.Errorf("MoveSubnet: %s (was %s)", moved[0].Addr, hosts[0].Addr)
	}
	var buf bytes.Buffer
	if err := FormatHosts(&buf, moved); err != nil {
		t.Fatal(err)
	}
	back, err := ParseHosts(&buf)
	if err != nil || !slices.Equal(back, moved) {
		t.Errorf("FormatHosts then ParseHosts: %v %v, want %v", back, err, moved)
	}
	if d := hosts[len(hosts)-1].Daemons(); !slices.Equal(d, []string{"httpd", "mount"}) {
		t.Errorf("client daemons %v", d)
	}
}

func TestParseHostsRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"a 10.0.0.1 meta",
		"a 10.0.0.1 meta - extra",
		"a ::1 meta -",
		"a 10.0.0.1 chunk x",
		"a 10.0.0.1 chunk 0",
		"a 10.0.0.1 printer -",
		"a 10.0.0.1 meta -\na 10.0.0.2 meta -",
		"a 10.0.0.1 meta -\nb 10.0.1.2 meta -",
	} {
		if h, err := ParseHosts(strings.NewReader(in)); err == nil {
			t.Errorf("ParseHosts(%q) = %v, want an error", in, h)
		}
	}
}
