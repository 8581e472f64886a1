package metaserver

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestDecideISR(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	ago := func(d time.Duration) int64 { return now.Add(-d).UnixNano() }
	rules := isrRules{LagTime: 10 * time.Second, LagBytes: 1 << 30}
	// member builds a healthy member whose followers are given as
	// id:caughtUpAgo:behind.
	type fol struct {
		id     string
		ago    time.Duration
		behind uint64
		bytes  uint64
	}
	member := func(id string, seq uint64, fs ...fol) wire.Member {
		m := wire.Member{ID: id, Healthy: true, Seq: seq, Started: ago(time.Hour), MinCopies: 2}
		for _, f := range fs {
			m.Followers = append(m.Followers, wire.Follower{ID: f.id, CaughtUp: ago(f.ago), Behind: f.behind, BehindBytes: f.bytes})
		}
		return m
	}
	down := func(m wire.Member) wire.Member { m.Healthy = false; return m }
	full := func(m wire.Member) wire.Member { m.Full = true; return m }
	resync := func(m wire.Member) wire.Member {
		m.Sources = []wire.Source{{ID: "x", Resync: true}}
		return m
	}
	fresh := func(id string) wire.Member {
		return wire.Member{ID: id, Healthy: true, Started: ago(time.Second), MinCopies: 2}
	}
	cases := []struct {
		name    string
		members []wire.Member
		cur     []string
		want    []string
		why     string // a substring of the reasons
	}{
		{"new group of empty members starts with all", []wire.Member{fresh("a"), fresh("b"), fresh("c")}, nil, []string{"a", "b", "c"}, "joined"},
		{"steady state keeps everyone",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}), member("b", 5, fol{"a", time.Second, 0, 0})},
			[]string{"a", "b"}, []string{"a", "b"}, ""},
		{"dead member leaves",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}), down(member("b", 5))},
			[]string{"a", "b"}, []string{"a"}, "b left: unhealthy"},
		{"full member leaves at once",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}), full(member("b", 5, fol{"a", 0, 0, 0}))},
			[]string{"a", "b"}, []string{"a"}, "b left: disk at its reserve"},
		{"lagging member leaves after LagTime",
			[]wire.Member{member("a", 10, fol{"b", 11 * time.Second, 40, 0}), member("b", 5, fol{"a", 0, 0, 0})},
			[]string{"a", "b"}, []string{"a"}, "b left: not caught up with a's binlog"},
		{"lagging within LagTime stays",
			[]wire.Member{member("a", 10, fol{"b", 9 * time.Second, 40, 0}), member("b", 5, fol{"a", 0, 0, 0})},
			[]string{"a", "b"}, []string{"a", "b"}, ""},
		{"too many bytes behind leaves",
			[]wire.Member{member("a", 10, fol{"b", time.Second, 400, 2 << 30}), member("b", 5, fol{"a", 0, 0, 0})},
			[]string{"a", "b"}, []string{"a"}, "bytes behind"},
		{"member that never fetched from a restarted source is judged from the source's start",
			[]wire.Member{func() wire.Member { m := member("a", 10); m.Started = ago(20 * time.Second); return m }(), member("b", 5, fol{"a", 0, 0, 0})},
			[]string{"a", "b"}, []string{"a"}, "b left"},
		{"two lag each other: the set is never emptied for lag",
			[]wire.Member{member("a", 10, fol{"b", time.Minute, 4, 0}), member("b", 5, fol{"a", time.Minute, 4, 0})},
			[]string{"a", "b"}, []string{"a"}, "left"},
		{"caught-up member rejoins",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}, fol{"c", 0, 0, 0}), member("b", 5, fol{"a", 0, 0, 0}), member("c", 5, fol{"a", 0, 0, 0}, fol{"b", 0, 0, 0})},
			[]string{"a", "c"}, []string{"a", "b", "c"}, "b joined"},
		{"member behind one in-sync peer does not rejoin",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}, fol{"c", 0, 0, 0}), member("b", 5), member("c", 50, fol{"a", 0, 0, 0}, fol{"b", time.Minute, 45, 0})},
			[]string{"a", "c"}, []string{"a", "c"}, ""},
		{"recently caught up and a block behind rejoins",
			[]wire.Member{member("a", 10, fol{"b", time.Second, 1, 4 << 20}), member("b", 5, fol{"a", 0, 0, 0})},
			[]string{"a"}, []string{"a", "b"}, "b joined"},
		{"resyncing member does not join",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}), resync(member("b", 0, fol{"a", 0, 0, 0}))},
			[]string{"a"}, []string{"a"}, ""},
		{"removed member leaves",
			[]wire.Member{member("a", 10)},
			[]string{"a", "gone"}, []string{"a"}, "gone left: removed"},
		{"every in-sync member died: survivors judged against each other",
			[]wire.Member{down(member("a", 10)), member("b", 5, fol{"c", 0, 0, 0}), member("c", 5, fol{"b", 0, 0, 0})},
			[]string{"a"}, []string{"b", "c"}, "joined"},
		{"unhealthy member does not join",
			[]wire.Member{member("a", 10, fol{"b", 0, 0, 0}), down(member("b", 5))},
			[]string{"a"}, []string{"a"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := decideISR(now, tc.members, tc.cur, rules)
			if !slices.Equal(got.ISR, tc.want) {
				t.Fatalf("ISR = %v, want %v (why: %v)", got.ISR, tc.want, got.Why)
			}
			cur := slices.Clone(tc.cur)
			slices.Sort(cur)
			if got.Changed != !slices.Equal(cur, tc.want) {
				t.Errorf("Changed = %v", got.Changed)
			}
			if tc.why != "" && !strings.Contains(strings.Join(got.Why, "; "), tc.why) {
				t.Errorf("why = %q, want it to mention %q", got.Why, tc.why)
			}
		})
	}
}

func TestQuorumProblem(t *testing.T) {
	g := wire.Group{ID: 3, MinCopies: 2, ISR: []string{"a"}, Members: []wire.Member{
		{ID: "a", Healthy: true}, {ID: "b", Healthy: false}, {ID: "c", Healthy: true, Full: true},
	}}
	p := quorumProblem(g)
	for _, want := range []string{"group 3 has 1 in-sync member(s)", "needs 2", "b down", "c full"} {
		if !strings.Contains(p, want) {
			t.Errorf("problem %q lacks %q", p, want)
		}
	}
	g.ISR = []string{"a", "c"}
	g.Members[2].Full = false
	if p := quorumProblem(g); p != "" {
		t.Errorf("writable group: problem %q", p)
	}
	if n := minCopiesOf([]wire.Member{{MinCopies: 1}, {MinCopies: 3}, {}}); n != 3 {
		t.Errorf("minCopiesOf = %d, want 3", n)
	}
}
