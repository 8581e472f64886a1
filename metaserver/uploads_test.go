package metaserver

import (
	"slices"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestUploadRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []wire.IDRange
		want []wire.IDRange
		bad  bool
	}{
		{in: nil, want: nil},
		{in: []wire.IDRange{{5, 9}}, want: []wire.IDRange{{5, 9}}},
		{in: []wire.IDRange{{10, 12}, {5, 9}}, want: []wire.IDRange{{5, 12}}},                // adjacent
		{in: []wire.IDRange{{5, 9}, {7, 20}, {1, 1}}, want: []wire.IDRange{{1, 1}, {5, 20}}}, // overlapping
		{in: []wire.IDRange{{5, 9}, {11, 11}}, want: []wire.IDRange{{5, 9}, {11, 11}}},
		{in: []wire.IDRange{{9, 5}}, bad: true},
		{in: []wire.IDRange{{0, 5}}, bad: true},
	} {
		got, err := normalizeRanges(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("normalizeRanges(%v) = %v, %v; want %v (bad %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	rs := []wire.IDRange{{5, 9}, {11, 11}, {20, 30}}
	for id, want := range map[uint64]bool{4: false, 5: true, 9: true, 10: false, 11: true, 12: false, 25: true, 31: false} {
		if got := inRanges(rs, id); got != want {
			t.Errorf("inRanges(%v, %d) = %v", rs, id, got)
		}
	}
}

// A block that was ever queued for deletion can never be committed, also
// after its queue entry is gone: its tombstone stays.
func TestCommitRefusesDeletedBlock(t *testing.T) {
	dir := t.TempDir()
	c, clk := openTestCore(t, dir)
	clk.advance(testTTL + time.Second)
	id := lease(t, c, 3)
	f := mkfile(t, c, wire.RootIno, "f")
	g := mkfile(t, c, wire.RootIno, "g")

	// Collected as an upload left uncommitted, then deleted everywhere.
	if n, err := c.queueUnreferenced([]uint64{id}, 1); n != 1 || err != nil {
		t.Fatalf("queueUnreferenced = %d, %v", n, err)
	}
	if err := c.dequeue([]uint64{id}); err != nil {
		t.Fatal(err)
	}
	if len(queuedIDs(t, c)) != 0 || !has(t, c, keyTomb(id)) {
		t.Fatalf("queue %v, tombstone %v", queuedIDs(t, c), has(t, c, keyTomb(id)))
	}
	_, err := c.commit(bg, &wire.CommitReq{Ino: f.Ino, Size: 100, Slices: []wire.ChunkSlice{slice(0, 0, 100, id)}})
	wantCode(t, err, wire.CodeInvalid)

	// Freed by a truncation, deleted, then offered to another file.
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id+1))
	if _, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.dequeue(queuedIDs(t, c)); err != nil {
		t.Fatal(err)
	}
	_, err = c.commit(bg, &wire.CommitReq{Ino: g.Ino, Size: 100, Slices: []wire.ChunkSlice{slice(0, 0, 100, id+1)}})
	wantCode(t, err, wire.CodeInvalid)
	if a := getattr(t, c, g.Ino); a.Size != 0 {
		t.Fatalf("refused commit changed the file: size %d", a.Size)
	}

	// The tombstone survives a restart; an untouched block still commits.
	c.close()
	c, _ = openTestCore(t, dir)
	_, err = c.commit(bg, &wire.CommitReq{Ino: g.Ino, Size: 100, Slices: []wire.ChunkSlice{slice(0, 0, 100, id)}})
	wantCode(t, err, wire.CodeInvalid)
	commit(t, c, g.Ino, 100, slice(0, 0, 100, id+2))
}

// The collector leaves alone the uploads that live sessions report, drops
// that protection with the report or the session, and queues nothing for
// one session TTL after a start.
func TestCollectorSkipsSessionUploads(t *testing.T) {
	c, clk := newTestCore(t)
	id := lease(t, c, 10)
	all := make([]uint64, 10)
	for i := range all {
		all[i] = id + uint64(i)
	}
	keepAlive := func(sess string, up ...wire.IDRange) {
		t.Helper()
		if err := c.keepAlive(bg, &wire.SessionReq{Session: sess, Uploads: up}); err != nil {
			t.Fatal(err)
		}
	}
	keepAlive("s1", wire.IDRange{id, id + 3})
	keepAlive("s2", wire.IDRange{id + 5, id + 5})

	// Within a TTL of the start nothing is queued: sessions that lived
	// before a restart have not reported yet.
	if n, err := c.queueUnreferenced(all, 1); n != 0 || err != nil {
		t.Fatalf("within a TTL of the start: queued %d, %v", n, err)
	}
	clk.advance(testTTL + time.Second)
	keepAlive("s1", wire.IDRange{id + 2, id + 3}, wire.IDRange{id, id + 1})
	keepAlive("s2", wire.IDRange{id + 5, id + 5})
	if n, err := c.queueUnreferenced(all, 1); n != 5 || err != nil {
		t.Fatalf("queued %d, %v; want 5", n, err)
	}
	want := []uint64{id + 4, id + 6, id + 7, id + 8, id + 9}
	if q := queuedIDs(t, c); !slices.Equal(q, want) {
		t.Fatalf("queue %v, want %v", q, want)
	}

	// s1 no longer reports its uploads (it committed or dropped them).
	keepAlive("s1")
	if n, _ := c.queueUnreferenced(all, 1); n != 4 {
		t.Fatalf("after s1 dropped its uploads: queued %d, want 4", n)
	}
	// s2 goes silent: its uploads are collected once the session expired.
	clk.advance(testTTL / 2)
	keepAlive("s1")
	if n, _ := c.queueUnreferenced(all, 1); n != 0 {
		t.Fatalf("s2 still live: queued %d", n)
	}
	clk.advance(testTTL/2 + time.Second)
	keepAlive("s1")
	if _, err := c.reap(bg); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.queueUnreferenced(all, 1); n != 1 {
		t.Fatalf("after s2 expired: queued %d, want 1", n)
	}

	// Malformed reports are refused.
	err := c.keepAlive(bg, &wire.SessionReq{Session: "s1", Uploads: []wire.IDRange{{9, 3}}})
	wantCode(t, err, wire.CodeInvalid)
}

func TestWithoutIDs(t *testing.T) {
	const top = ^uint64(0)
	for _, tc := range []struct {
		rs   []wire.IDRange
		ids  []uint64
		want []wire.IDRange
	}{
		{rs: nil, ids: []uint64{3}, want: nil},
		{rs: []wire.IDRange{{5, 9}}, ids: nil, want: []wire.IDRange{{5, 9}}},
		{rs: []wire.IDRange{{5, 9}}, ids: []uint64{5}, want: []wire.IDRange{{6, 9}}},
		{rs: []wire.IDRange{{5, 9}}, ids: []uint64{9}, want: []wire.IDRange{{5, 8}}},
		{rs: []wire.IDRange{{5, 9}}, ids: []uint64{7, 7, 1, 20}, want: []wire.IDRange{{5, 6}, {8, 9}}},
		{rs: []wire.IDRange{{5, 5}}, ids: []uint64{5}, want: nil},
		{rs: []wire.IDRange{{5, 9}, {12, 14}}, ids: []uint64{9, 12, 6}, want: []wire.IDRange{{5, 5}, {7, 8}, {13, 14}}},
		{rs: []wire.IDRange{{top - 2, top}}, ids: []uint64{top}, want: []wire.IDRange{{top - 2, top - 1}}},
		{rs: []wire.IDRange{{1, top}}, ids: []uint64{2}, want: []wire.IDRange{{1, 1}, {3, top}}},
	} {
		var bs []wire.BlockRef
		for _, id := range tc.ids {
			bs = append(bs, wire.BlockRef{ID: id, Group: 1})
		}
		if got := withoutIDs(tc.rs, bs); !slices.Equal(got, tc.want) {
			t.Errorf("withoutIDs(%v, %v) = %v, want %v", tc.rs, tc.ids, got, tc.want)
		}
	}
}

// A discard queues the caller's uncommitted uploads at once (no grace, no
// wait for the next keep-alive), and leaves alone what it must not
// delete: committed blocks, ids never leased, other sessions' uploads and
// blocks queued before.
func TestDiscardQueuesAbandonedUploads(t *testing.T) {
	c, _ := newTestCore(t)
	id := lease(t, c, 6)
	f := mkfile(t, c, wire.RootIno, "f")
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id))
	if err := c.keepAlive(bg, &wire.SessionReq{Session: "s1", Uploads: []wire.IDRange{{id + 1, id + 3}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.keepAlive(bg, &wire.SessionReq{Session: "s2", Uploads: []wire.IDRange{{id + 4, id + 4}}}); err != nil {
		t.Fatal(err)
	}
	refs := func(ids ...uint64) []wire.BlockRef {
		var out []wire.BlockRef
		for _, i := range ids {
			out = append(out, wire.BlockRef{ID: i, Group: 1})
		}
		return out
	}
	never := c.highWater()
	err := c.discard(bg, &wire.DiscardReq{Session: "s1", Blocks: refs(id, id+1, id+2, id+4, id+5, never)})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{id + 1, id + 2, id + 5}
	if q := queuedIDs(t, c); !slices.Equal(q, want) {
		t.Fatalf("queue %v, want %v (committed, other session's and unleased ids stay)", q, want)
	}
	c.mu.Lock()
	held := slices.Clone(c.sessions["s1"].uploads)
	c.mu.Unlock()
	if !slices.Equal(held, []wire.IDRange{{id + 3, id + 3}}) {
		t.Fatalf("s1 still holds %v, want only %d", held, id+3)
	}
	// Again, after the deletes: tombstoned blocks are not queued twice.
	if err := c.dequeue(want); err != nil {
		t.Fatal(err)
	}
	if err := c.discard(bg, &wire.DiscardReq{Session: "s1", Blocks: refs(id+1, id+2)}); err != nil {
		t.Fatal(err)
	}
	if q := queuedIDs(t, c); len(q) != 0 {
		t.Fatalf("queued again: %v", q)
	}
	// A discarded block can never be committed.
	_, err = c.commit(bg, &wire.CommitReq{Ino: f.Ino, Size: 100, Slices: []wire.ChunkSlice{slice(0, 0, 100, id+1)}})
	wantCode(t, err, wire.CodeInvalid)

	for _, bad := range []*wire.DiscardReq{
		{Session: "", Blocks: refs(id + 3)},
		{Session: "s1", Blocks: refs(0)},
		{Session: "s1", Blocks: []wire.BlockRef{{ID: id + 3, Group: 99}}},
	} {
		wantCode(t, c.discard(bg, bad), wire.CodeInvalid)
	}
}

func TestSpaceFull(t *testing.T) {
	const room = uint64(wire.MaxBlockSize + placeMargin)
	m := func(id string, healthy bool, free uint64) wire.Member {
		return wire.Member{ID: id, Healthy: healthy, Free: free}
	}
	grp := func(id uint32, isr []string, ms ...wire.Member) wire.Group {
		return wire.Group{ID: id, ISR: isr, MinCopies: 2, Members: ms}
	}
	for _, tc := range []struct {
		name   string
		groups []wire.Group
		want   bool
	}{
		{"no groups", nil, false},
		{"room", []wire.Group{grp(1, []string{"a", "b"}, m("a", true, room), m("b", true, room))}, false},
		{"one member short", []wire.Group{grp(1, []string{"a", "b"}, m("a", true, room), m("b", true, room-1))}, true},
		{"short member outside the in-sync set", []wire.Group{grp(1, []string{"a"}, m("a", true, room), m("b", true, 0))}, false},
		{"a member down is no lack of space", []wire.Group{grp(1, []string{"a", "b", "c"}, m("a", true, room), m("b", true, room), m("c", false, 0))}, false},
		{"quorum lost, space left", []wire.Group{grp(1, []string{"a", "b"}, m("a", true, room), m("b", false, room))}, false},
		{"every member down", []wire.Group{grp(1, []string{"a"}, m("a", false, 0))}, false},
		{"one group full, another has room", []wire.Group{
			grp(1, []string{"a"}, m("a", true, 0)),
			grp(2, []string{"b"}, m("b", true, room)),
		}, false},
		{"both groups full", []wire.Group{
			grp(1, []string{"a"}, m("a", true, 0)),
			grp(2, []string{"b"}, m("b", true, room/2)),
		}, true},
		{"flagged full", []wire.Group{grp(1, []string{"a"}, wire.Member{ID: "a", Healthy: true, Free: room, Full: true})}, true},
	} {
		if got := spaceFull(tc.groups); got != tc.want {
			t.Errorf("%s: spaceFull = %v, want %v", tc.name, got, tc.want)
		}
	}
}
