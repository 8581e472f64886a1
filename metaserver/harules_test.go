package metaserver

import (
	"slices"
	"testing"
	"time"
)

func TestMayLeadAndPromote(t *testing.T) {
	st := &haState{Epoch: 4, Leader: "a:1", LeaderID: "a", ISR: []string{"a", "b"}}
	cases := []struct {
		name string
		st   *haState
		self string
		ok   bool
		want haState
	}{
		{"first start: anyone, alone in the set", nil, "c", true, haState{Epoch: 1, Leader: "c:1", LeaderID: "c", ISR: []string{"c"}}},
		{"in-sync member: next epoch, same set", st, "b", true, haState{Epoch: 5, Leader: "b:1", LeaderID: "b", ISR: []string{"a", "b"}}},
		{"not in the set: refused", st, "c", false, haState{}},
		{"empty set record of epoch 0 counts as first start", &haState{}, "c", true, haState{Epoch: 1, Leader: "c:1", LeaderID: "c", ISR: []string{"c"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mayLead(c.st, c.self); got != c.ok {
				t.Fatalf("mayLead = %v", got)
			}
			got, err := promote(c.st, c.self, c.self+":1", 0)
			if (err == nil) != c.ok {
				t.Fatalf("promote err = %v", err)
			}
			if c.ok && (got.Epoch != c.want.Epoch || got.Leader != c.want.Leader || got.LeaderID != c.want.LeaderID || !slices.Equal(got.ISR, c.want.ISR)) {
				t.Fatalf("promote = %+v, want %+v", got, c.want)
			}
		})
	}
	// An epoch in the member's own log above the record's (the record
	// was lost or is older) is never reused.
	if got, _ := promote(nil, "a", "a:1", 9); got.Epoch != 10 {
		t.Fatalf("promote without a record over local epoch 9: epoch %d", got.Epoch)
	}
	if got, _ := promote(st, "a", "a:1", 7); got.Epoch != 8 {
		t.Fatalf("promote over record 4 and local 7: epoch %d", got.Epoch)
	}
	// The returned set is a copy: changing it leaves the record alone.
	got, _ := promote(st, "a", "a:1", 0)
	got.ISR[0] = "x"
	if st.ISR[0] != "a" {
		t.Fatal("promote aliases the stored set")
	}
}

func TestObserveFetch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var f follower
	// First fetch, behind: not caught up (no earlier round to compare).
	f = observeFetch(f, 5, 10, t0)
	if !f.CaughtUp.IsZero() || f.Next != 5 || f.Lost {
		t.Fatalf("first fetch behind: %+v", f)
	}
	// Second fetch past where the leader was at the first: caught up.
	f = observeFetch(f, 11, 20, t0.Add(time.Second))
	if !f.CaughtUp.Equal(t0.Add(time.Second)) {
		t.Fatalf("second fetch: %+v", f)
	}
	// Falling behind the leader's previous end: CaughtUp stays old.
	f = observeFetch(f, 15, 40, t0.Add(2*time.Second))
	if !f.CaughtUp.Equal(t0.Add(time.Second)) {
		t.Fatalf("behind: %+v", f)
	}
	// Asking for everything (from = last+1) is caught up at once.
	g := observeFetch(follower{}, 41, 40, t0)
	if !g.CaughtUp.Equal(t0) {
		t.Fatalf("from past the end: %+v", g)
	}
	// Asking below an acknowledged seq: lost.
	f = observeFetch(f, 3, 40, t0.Add(3*time.Second))
	if !f.Lost {
		t.Fatalf("fetch below the ack: %+v", f)
	}
}

func TestDecideHAISR(t *testing.T) {
	now := time.Unix(1000, 0)
	lag := 2 * time.Second
	fresh := follower{Next: 10, LastFetch: now, CaughtUp: now}
	stale := follower{Next: 5, LastFetch: now, CaughtUp: now.Add(-3 * time.Second)}
	cases := []struct {
		name  string
		isr   []string
		fs    map[string]follower
		want  []string
		moved []string
	}{
		{"steady", []string{"a", "b", "c"}, map[string]follower{"b": fresh, "c": fresh}, []string{"a", "b", "c"}, nil},
		{"a lagging member leaves", []string{"a", "b", "c"}, map[string]follower{"b": fresh, "c": stale}, []string{"a", "b"}, []string{"c"}},
		{"one that never fetched leaves", []string{"a", "b"}, map[string]follower{}, []string{"a"}, []string{"b"}},
		{"a lost member leaves at once", []string{"a", "b"}, map[string]follower{"b": {Next: 10, LastFetch: now, CaughtUp: now, Lost: true}}, []string{"a"}, []string{"b"}},
		{"a caught-up follower joins", []string{"a"}, map[string]follower{"b": fresh}, []string{"a", "b"}, []string{"b"}},
		{"a lagging follower stays out", []string{"a"}, map[string]follower{"b": stale}, []string{"a"}, nil},
		{"one that stopped fetching stays out", []string{"a"}, map[string]follower{"b": {Next: 10, LastFetch: now.Add(-3 * time.Second), CaughtUp: now.Add(-3 * time.Second)}}, []string{"a"}, nil},
		{"never caught up stays out", []string{"a"}, map[string]follower{"b": {Next: 1, LastFetch: now}}, []string{"a"}, nil},
		{"a member polling at the log end stays, however old its fetch", []string{"a", "b"}, map[string]follower{"b": {Next: 10, LastFetch: now.Add(-time.Minute), CaughtUp: now.Add(-time.Minute), Polling: true}}, []string{"a", "b"}, nil},
		{"a member shutting down leaves at once, even while polling", []string{"a", "b", "c"}, map[string]follower{"b": fresh, "c": {Next: 10, LastFetch: now, CaughtUp: now, Polling: true, Left: true}}, []string{"a", "b"}, []string{"c"}},
		{"one that left does not join", []string{"a"}, map[string]follower{"b": {Next: 10, LastFetch: now, CaughtUp: now, Left: true}}, []string{"a"}, nil},
		{"the leader is always in", []string{"b"}, map[string]follower{"b": fresh}, []string{"a", "b"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ch := decideHAISR(c.isr, "a", c.fs, now, lag)
			if !slices.Equal(got, c.want) {
				t.Fatalf("isr = %v, want %v", got, c.want)
			}
			var moved []string
			for _, x := range ch {
				moved = append(moved, x.Node)
			}
			if !slices.Equal(moved, c.moved) {
				t.Fatalf("changes = %v, want %v", ch, c.moved)
			}
		})
	}
}

func TestHighWater(t *testing.T) {
	fs := map[string]follower{"b": {Next: 8}, "c": {Next: 11}, "d": {Next: 3}}
	cases := []struct {
		name string
		isr  []string
		last uint64
		want uint64
	}{
		{"alone: everything", []string{"a"}, 10, 10},
		{"slowest in-sync member bounds it", []string{"a", "b", "c"}, 10, 7},
		{"members outside the set do not count", []string{"a", "c"}, 10, 10},
		{"never capped above last", []string{"a", "c"}, 9, 9},
		{"an in-sync member that never fetched holds it at 0", []string{"a", "e"}, 10, 0},
	}
	for _, c := range cases {
		if got := highWater(c.isr, "a", fs, c.last); got != c.want {
			t.Errorf("%s: highWater = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestTruncateTo(t *testing.T) {
	// Leader history: epoch 1 from 1, epoch 3 from 50, epoch 4 from 80;
	// its log ends at 100.
	h := []epochStart{{1, 1}, {3, 50}, {4, 80}}
	cases := []struct {
		name        string
		last, epoch uint64
		want        uint64
		ok          bool
	}{
		{"same epoch, behind: keep all", 90, 4, 90, true},
		{"old epoch ended earlier: cut to its end", 60, 1, 49, true},
		{"deposed leader of epoch 2 (unknown here): cut to the end of epoch 1", 70, 2, 49, true},
		{"old epoch, already within its end", 40, 1, 40, true},
		{"epoch 3 member past epoch 3's end", 85, 3, 79, true},
		{"never followed, holds its own first-start log: snapshot", 1, 0, 0, false},
		{"never followed, longer log: snapshot", 130, 0, 0, false},
		{"empty member", 0, 0, 0, true},
	}
	for _, c := range cases {
		got, ok := truncateTo(c.last, c.epoch, h, 100)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: truncateTo = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	// A leader whose history starts after the member's epoch cannot say.
	if _, ok := truncateTo(10, 1, []epochStart{{5, 200}}, 300); ok {
		t.Error("epochEnd answered for an epoch before the leader's history")
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	rs := []logRecord{{Seq: 7, Entry: []byte("abc")}, {Seq: 8, Entry: nil}, {Seq: 9, Entry: []byte("z")}}
	got, err := decodeRecords(encodeRecords(rs))
	if err != nil || len(got) != 3 || got[0].Seq != 7 || string(got[0].Entry) != "abc" || got[2].Seq != 9 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := decodeRecords(encodeRecords(rs)[:14]); err == nil {
		t.Fatal("a cut record decoded")
	}
}
