package metaserver

import (
	"slices"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

const gib = 1 << 30

func m(id string, free uint64, load int, healthy bool) wire.Member {
	return wire.Member{ID: id, Addr: id + ":1", Capacity: 100 * gib, Free: free, Load: load, Healthy: healthy}
}

func grp(id uint32, ms ...wire.Member) wire.Group {
	for i := range ms {
		ms[i].Group = id
	}
	return wire.Group{ID: id, Members: ms}
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
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := place(tc.groups, tc.bytes)
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
	tr := newTracker(10 * time.Second)
	now := time.Unix(1000, 0)
	tr.heartbeat(m("a", gib, 0, false), now)
	tr.heartbeat(m("b", gib, 0, false), now.Add(-11*time.Second))
	gs := tr.groups(now)
	if len(gs) != 1 || len(gs[0].Members) != 2 {
		t.Fatalf("groups %+v", gs)
	}
	if !gs[0].Members[0].Healthy || gs[0].Members[1].Healthy {
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
	wantCode(t, c.heartbeat(bg, member("old", 1, "127.0.0.1:1")), "")
	clk.advance(11 * time.Second)
	wantCode(t, c.heartbeat(bg, member("new", 2, "127.0.0.1:2")), "")
	r, err := c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: 1})
	if err != nil || r.Group != 2 {
		t.Fatalf("alloc = %+v, %v", r, err)
	}
	st := c.statFS(bg)
	if st.Groups != 1 || st.Files != 1 {
		t.Fatalf("statfs %+v", st)
	}
}
