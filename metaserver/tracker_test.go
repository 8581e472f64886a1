package metaserver

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

const gib = 1 << 30

func m(id string, free uint64, load int, healthy bool) wire.Member {
	return wire.Member{ID: id, Addr: id + ":1", Capacity: 100 * gib, Free: free, Load: load, Healthy: healthy}
}

func grp(id uint32, ms ...wire.Member) wire.Group {
	g := wire.Group{ID: id, Members: ms, MinCopies: 1}
	for i := range ms {
		ms[i].Group = id
		g.ISR = append(g.ISR, ms[i].ID)
	}
	return g
}

func TestPlace(t *testing.T) {
	cases := []struct {
		name    string
		groups  []wire.Group
		bytes   uint64
		want    wire.Code
		group   uint32
		members []string
	}{
		{name: "no groups", want: wire.CodeUnavailable},
		{
			name:   "only unhealthy members",
			groups: []wire.Group{grp(1, m("a", 50*gib, 0, false)), grp(2, m("b", 50*gib, 0, false))},
			want:   wire.CodeUnavailable,
		},
		{
			name:   "all full",
			groups: []wire.Group{grp(1, m("a", gib, 0, true)), grp(2, m("b", 2*gib, 0, true))},
			bytes:  2 * gib,
			want:   wire.CodeNoSpace,
		},
		{
			name:   "margin counts",
			groups: []wire.Group{grp(1, m("a", gib, 0, true))},
			bytes:  gib - placeMargin + 1,
			want:   wire.CodeNoSpace,
		},
		{
			name:    "most free wins",
			groups:  []wire.Group{grp(1, m("a", 10*gib, 0, true)), grp(2, m("b", 20*gib, 5, true)), grp(3, m("c", 15*gib, 0, true))},
			bytes:   gib,
			group:   2,
			members: []string{"b:1"},
		},
		{
			name:    "group free is its fullest member",
			groups:  []wire.Group{grp(1, m("a1", 90*gib, 0, true), m("a2", 5*gib, 0, true)), grp(2, m("b", 20*gib, 0, true))},
			bytes:   gib,
			group:   2,
			members: []string{"b:1"},
		},
		{
			name:    "near tie goes to the lower load",
			groups:  []wire.Group{grp(1, m("a", 100*gib, 10, true)), grp(2, m("b", 98*gib, 1, true))},
			bytes:   gib,
			group:   2,
			members: []string{"b:1"},
		},
		{
			name:    "no tie when far apart",
			groups:  []wire.Group{grp(1, m("a", 100*gib, 10, true)), grp(2, m("b", 50*gib, 0, true))},
			bytes:   gib,
			group:   1,
			members: []string{"a:1"},
		},
		{
			name:    "exact tie goes to the lower id",
			groups:  []wire.Group{grp(7, m("a", 10*gib, 0, true)), grp(3, m("b", 10*gib, 0, true))},
			bytes:   gib,
			group:   3,
			members: []string{"b:1"},
		},
		{
			name: "unhealthy member neither chosen nor counted",
			groups: []wire.Group{
				grp(1, m("a1", 30*gib, 0, true), m("a2", 0, 0, false), m("a3", 40*gib, 0, true)),
				grp(2, m("b", 20*gib, 0, true)),
			},
			bytes:   gib,
			group:   1,
			members: []string{"a1:1", "a3:1"},
		},
		{
			name: "members in id order whatever their free space and load (primary first)",
			groups: []wire.Group{grp(1,
				m("c", 30*gib, 5, true), m("b", 40*gib, 9, true), m("a", 30*gib, 1, true))},
			bytes:   gib,
			group:   1,
			members: []string{"a:1", "b:1", "c:1"},
		},
		{
			name: "a full healthy member excludes its group",
			groups: []wire.Group{
				grp(1, m("a1", 90*gib, 0, true), m("a2", 0, 0, true)),
				grp(2, m("b", 2*gib, 0, true)),
			},
			bytes:   gib,
			group:   2,
			members: []string{"b:1"},
		},
	}
	// Replication: only in-sync members count, and only while there are
	// min-copies of them.
	degraded := grp(1, m("a", 50*gib, 0, true), m("b", 50*gib, 0, true), m("c", 50*gib, 0, true))
	degraded.MinCopies, degraded.ISR = 2, []string{"a"}
	replicated := grp(2, m("d", 10*gib, 0, true), m("e", 10*gib, 0, true), m("f", 10*gib, 0, true))
	replicated.MinCopies, replicated.ISR = 2, []string{"d", "f"}
	cases = append(cases, []struct {
		name    string
		groups  []wire.Group
		bytes   uint64
		want    wire.Code
		group   uint32
		members []string
	}{
		{name: "too few in-sync members: no placement, NOSPACE", groups: []wire.Group{degraded}, bytes: gib, want: wire.CodeNoSpace},
		{name: "degraded group skipped for a replicated one", groups: []wire.Group{degraded, replicated}, bytes: gib,
			group: 2, members: []string{"d:1", "f:1"}},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := place(tc.groups, tc.bytes, 0)
			if tc.want != "" {
				if wire.CodeOf(err) != tc.want {
					t.Fatalf("place = %+v, %v; want %s", p, err, tc.want)
				}
				return
			}
			if err != nil || p.Group != tc.group || !slices.Equal(p.Members, tc.members) {
				t.Fatalf("place = %+v, %v; want group %d members %v", p, err, tc.group, tc.members)
			}
		})
	}
}

func TestPlaceSpreadsAndExplains(t *testing.T) {
	g := grp(1, m("a", 10*gib, 0, true), m("b", 10*gib, 0, true), m("c", 10*gib, 0, true))
	firsts := map[string]bool{}
	for turn := uint64(0); turn < 3; turn++ {
		p, err := place([]wire.Group{g}, gib, turn)
		if err != nil || len(p.Members) != 3 {
			t.Fatalf("place = %+v, %v", p, err)
		}
		firsts[p.Members[0]] = true
	}
	if len(firsts) != 3 {
		t.Errorf("three placements started at %v, want every member once", firsts)
	}
	g.MinCopies, g.ISR = 2, []string{"a"}
	g.Members[1].Healthy = false
	_, err := place([]wire.Group{g}, gib, 0)
	if wire.CodeOf(err) != wire.CodeNoSpace || !strings.Contains(err.Error(), "min-copies needs 2") ||
		!strings.Contains(err.Error(), "b down") || !strings.Contains(err.Error(), "c catching up") {
		t.Fatalf("place of a degraded group: %v", err)
	}
}

func TestStatFS(t *testing.T) {
	groups := []wire.Group{
		grp(1, m("a1", 30*gib, 0, true), m("a2", 20*gib, 0, true), m("a3", 1, 0, false)),
		grp(2, m("b", 10*gib, 0, true)),
		grp(3, m("c", 90*gib, 0, false)),
	}
	groups[0].Members[1].Capacity = 80 * gib
	st := statFS(groups, 17)
	want := wire.StatFS{Total: 180 * gib, Free: 30 * gib, Files: 17, BSize: wire.MaxBlockSize, Groups: 2}
	if st != want {
		t.Fatalf("statfs = %+v, want %+v", st, want)
	}
}

func TestTrackerHealth(t *testing.T) {
	tr := newTracker(10*time.Second, isrRules{LagTime: 10 * time.Second})
	now := time.Unix(1000, 0)
	tr.heartbeat(m("a", gib, 0, true), now)
	tr.heartbeat(m("b", gib, 0, true), now.Add(-11*time.Second))
	tr.heartbeat(m("sick", gib, 0, false), now) // its binlog or statfs failed
	gs := tr.groups(now)
	if len(gs) != 1 || len(gs[0].Members) != 3 {
		t.Fatalf("groups %+v", gs)
	}
	if !gs[0].Members[0].Healthy || gs[0].Members[1].Healthy || gs[0].Members[2].Healthy {
		t.Fatalf("health: %+v", gs[0].Members)
	}
	if gs[0].Members[0].LastSeen != now.UnixNano() {
		t.Fatal("LastSeen is not the time of the heartbeat")
	}
	if tr.healthyCount(now) != 1 {
		t.Fatal("healthy count")
	}
	// Through the core: a member past the timeout is not placed on.
	c, clk := newTestCore(t)
	wantCode(t, beat(c, member("old", 1, "127.0.0.1:1")), "")
	clk.advance(11 * time.Second)
	wantCode(t, beat(c, member("new", 2, "127.0.0.1:2")), "")
	r, err := c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: 1})
	if err != nil || r.Group != 2 {
		t.Fatalf("alloc = %+v, %v", r, err)
	}
	st := c.statFS(bg)
	if st.Groups != 1 || st.Files != 1 {
		t.Fatalf("statfs %+v", st)
	}
}

func TestRemoveMember(t *testing.T) {
	c, _ := newTestCore(t)
	wantCode(t, beat(c, member("a", 1, "127.0.0.1:1")), "")
	wantCode(t, beat(c, member("b", 1, "127.0.0.1:2")), "")
	g := c.tracker.group(1, c.clock())
	if len(g.ISR) != 2 {
		t.Fatalf("in-sync set of two fresh members: %v", g.ISR)
	}
	wantCode(t, c.removeMember(bg, &wire.RemoveMemberReq{Group: 1, ID: "b"}), "")
	g = c.tracker.group(1, c.clock())
	if len(g.Members) != 1 || !slices.Equal(g.ISR, []string{"a"}) || g.ISRVersion < 2 {
		t.Fatalf("after removing b: %+v", g)
	}
	wantCode(t, c.removeMember(bg, &wire.RemoveMemberReq{Group: 1, ID: "b"}), wire.CodeNotFound)
	wantCode(t, c.removeMember(bg, &wire.RemoveMemberReq{Group: 0, ID: "a"}), wire.CodeInvalid)
}
