package metaserver

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestCommitReadChunk(t *testing.T) {
	c, _ := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	id := lease(t, c, 3)
	rc, err := c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino, Index: 7})
	if err != nil || len(rc.Slices) != 0 || rc.Slices == nil || rc.Version != 1 {
		t.Fatalf("unwritten chunk: %+v, %v", rc, err)
	}

	a := commit(t, c, f.Ino, 3000, slice(0, 0, 1000, id), slice(0, 1000, 2000, id+1))
	if a.Size != 3000 || a.Version != 2 {
		t.Fatalf("after commit: %+v", a)
	}
	rc, err = c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino})
	if err != nil || rc.Version != 2 || len(rc.Slices) != 2 || rc.Slices[1].ID != id+1 || rc.Slices[1].Pos != 1000 {
		t.Fatalf("readchunk: %+v, %v", rc, err)
	}
	for _, b := range []uint64{id, id + 1} {
		v, err := c.db.Get(keyBlock(b), nil)
		if err != nil {
			t.Fatalf("reverse index of %d: %v", b, err)
		}
		if ino, idx, _ := decodeBlockRef(v); ino != f.Ino || idx != 0 {
			t.Fatalf("reverse index of %d: %d/%d", b, ino, idx)
		}
	}
	// A commit never shrinks; Mtime is taken from the request.
	a, err = c.commit(bg, &wire.CommitReq{Ino: f.Ino, Size: 10, Mtime: 42,
		Slices: []wire.ChunkSlice{slice(0, 3000, 10, id+2)}})
	if err != nil || a.Size != 3010 || a.Mtime != 42 || a.Ctime != 42 {
		t.Fatalf("commit past the size: %+v, %v", a, err)
	}
	// A retried commit of the same slices frees nothing.
	commit(t, c, f.Ino, 3010, slice(0, 3000, 10, id+2))
	if q := queuedIDs(t, c); len(q) != 0 {
		t.Fatalf("retry queued %v", q)
	}
}

func TestCommitOverwriteDropsHidden(t *testing.T) {
	c, _ := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	id := lease(t, c, 3)
	const mb = 1 << 20
	commit(t, c, f.Ino, 2*mb, slice(0, 0, mb, id), slice(0, mb, mb, id+1))
	// A small patch inside block id hides nothing entirely.
	patch := wire.ChunkSlice{Index: 0, Slice: wire.Slice{Pos: 100, Len: 10, ID: id + 2, Group: 1, Size: 10}}
	commit(t, c, f.Ino, 2*mb, patch)
	if q := queuedIDs(t, c); len(q) != 0 {
		t.Fatalf("partial overwrite queued %v", q)
	}
	// Rewriting the first MiB hides id and the patch.
	id2 := lease(t, c, 1)
	commit(t, c, f.Ino, 2*mb, slice(0, 0, mb, id2))
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id, id + 2}) {
		t.Fatalf("queue %v, want [%d %d]", q, id, id+2)
	}
	if has(t, c, keyBlock(id)) || has(t, c, keyBlock(id+2)) || !has(t, c, keyBlock(id2)) {
		t.Fatal("reverse index not updated")
	}
	rc, _ := c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino})
	if len(rc.Slices) != 2 || rc.Slices[0].ID != id+1 || rc.Slices[1].ID != id2 {
		t.Fatalf("chunk after overwrite: %+v", rc.Slices)
	}
	// The dropped blocks cannot come back.
	_, err := c.commit(bg, &wire.CommitReq{Ino: f.Ino, Slices: []wire.ChunkSlice{slice(0, 0, mb, id)}})
	wantCode(t, err, wire.CodeInvalid)
}

func TestCommitValidation(t *testing.T) {
	c, _ := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	g := mkfile(t, c, wire.RootIno, "g")
	id := lease(t, c, 2)
	commit(t, c, g.Ino, 100, slice(0, 0, 100, id+1))
	ok := slice(0, 0, 100, id)
	cases := []struct {
		name string
		s    wire.ChunkSlice
	}{
		{"id 0", wire.ChunkSlice{Slice: wire.Slice{Len: 1, Group: 1, Size: 1}}},
		{"never leased", slice(0, 0, 100, id+2)},
		{"unknown group", func() wire.ChunkSlice { s := ok; s.Group = 9; return s }()},
		{"empty", func() wire.ChunkSlice { s := ok; s.Len = 0; return s }()},
		{"past the chunk", slice(0, wire.ChunkSize-10, 100, id)},
		{"past the block", func() wire.ChunkSlice { s := ok; s.Off = 50; return s }()},
		{"block too big", func() wire.ChunkSlice { s := ok; s.Size = wire.MaxBlockSize + 1; return s }()},
		{"block of another file", slice(0, 0, 100, id+1)},
	}
	for _, tc := range cases {
		_, err := c.commit(bg, &wire.CommitReq{Ino: f.Ino, Slices: []wire.ChunkSlice{tc.s}})
		if wire.CodeOf(err) != wire.CodeInvalid {
			t.Errorf("%s: %v, want EINVAL", tc.name, err)
		}
	}
	if a := getattr(t, c, f.Ino); a.Version != 1 || a.Size != 0 {
		t.Fatalf("failed commits changed the file: %+v", a)
	}
	_, err := c.commit(bg, &wire.CommitReq{Ino: f.Ino, Slices: []wire.ChunkSlice{ok, slice(1, 0, 100, id)}})
	wantCode(t, err, wire.CodeInvalid) // one block in two chunks
	_, err = c.commit(bg, &wire.CommitReq{Ino: wire.RootIno, Slices: []wire.ChunkSlice{ok}})
	wantCode(t, err, wire.CodeIsDir)
	_, err = c.commit(bg, &wire.CommitReq{Ino: 999, Slices: []wire.ChunkSlice{ok}})
	wantCode(t, err, wire.CodeNotFound)
	_, err = c.commit(bg, &wire.CommitReq{Ino: f.Ino, Size: maxFileSize + 1})
	wantCode(t, err, wire.CodeInvalid)
}

func TestOrphanLifecycle(t *testing.T) {
	c, _ := newTestCore(t)
	f, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "f", Mode: 0o644, Open: true, Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	id := lease(t, c, 2)
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id))
	if _, err := c.open(bg, &wire.OpenReq{Ino: f.Ino, Session: "s2"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f", Session: "s1"}), "")
	if _, err := c.lookup(bg, &wire.LookupReq{Parent: wire.RootIno, Name: "f"}); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("unlinked name still resolves: %v", err)
	}
	if a := getattr(t, c, f.Ino); a.Nlink != 0 {
		t.Fatalf("orphan nlink %d", a.Nlink)
	}
	if !has(t, c, keyOrphan(f.Ino)) {
		t.Fatal("orphan not persisted")
	}
	// Still readable and writable.
	commit(t, c, f.Ino, 200, slice(0, 100, 100, id+1))
	rc, err := c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino})
	if err != nil || len(rc.Slices) != 2 {
		t.Fatalf("orphan readchunk: %+v, %v", rc, err)
	}
	_, err = c.link(bg, &wire.LinkReq{Ino: f.Ino, NewParent: wire.RootIno, NewName: "back"})
	wantCode(t, err, wire.CodeNotFound)

	wantCode(t, c.release(bg, &wire.OpenReq{Ino: f.Ino, Session: "s1"}), "")
	getattr(t, c, f.Ino) // s2 still holds it
	wantCode(t, c.release(bg, &wire.OpenReq{Ino: f.Ino, Session: "s2"}), "")
	gone(t, c, f.Ino)
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id, id + 1}) {
		t.Fatalf("queue %v", q)
	}
	if has(t, c, keyOrphan(f.Ino)) || countPrefix(t, c, pChunk) != 0 || countPrefix(t, c, pBlock) != 0 {
		t.Fatal("orphan left records behind")
	}
	// A second release is a no-op.
	wantCode(t, c.release(bg, &wire.OpenReq{Ino: f.Ino, Session: "s2"}), "")
}

func TestUnlinkNotOpenDeletes(t *testing.T) {
	c, _ := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	if _, err := c.open(bg, &wire.OpenReq{Ino: f.Ino, Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.release(bg, &wire.OpenReq{Ino: f.Ino, Session: "s1"}), "")
	// s1 is known and does not hold f: the session on unlink changes nothing.
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f", Session: "s1"}), "")
	gone(t, c, f.Ino)
}

func TestSessionExpiryReapsOrphans(t *testing.T) {
	c, clk := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	g := mkfile(t, c, wire.RootIno, "g")
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s1", Open: []uint64{f.Ino}}), "")
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s2", Open: []uint64{g.Ino}}), "")
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "g"}), "")

	clk.advance(testTTL / 2)
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s2", Open: []uint64{g.Ino}}), "")
	clk.advance(testTTL/2 + 1)
	n, err := c.reap(bg)
	if err != nil || n != 1 {
		t.Fatalf("reap = %d, %v", n, err)
	}
	gone(t, c, f.Ino)
	getattr(t, c, g.Ino)
	// A keep-alive that stops listing g releases it at once.
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s2"}), "")
	gone(t, c, g.Ino)
	if len(c.orphans) != 0 || countPrefix(t, c, pOrphan) != 0 {
		t.Fatal("orphans left")
	}
}

func TestOrphansSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c, _ := openTestCore(t, dir)
	f := mkfile(t, c, wire.RootIno, "f")
	g := mkfile(t, c, wire.RootIno, "g")
	for _, ino := range []uint64{f.Ino, g.Ino} {
		if _, err := c.open(bg, &wire.OpenReq{Ino: ino, Session: "s1"}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "g"}), "")
	c.close()

	c, clk := openTestCore(t, dir)
	if len(c.orphans) != 2 {
		t.Fatalf("%d orphans after restart", len(c.orphans))
	}
	// Within the TTL after start nothing is reaped.
	if n, err := c.reap(bg); n != 0 || err != nil {
		t.Fatalf("early reap = %d, %v", n, err)
	}
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s1", Open: []uint64{g.Ino}}), "")
	clk.advance(testTTL + 1)
	wantCode(t, c.keepAlive(bg, &wire.SessionReq{Session: "s1", Open: []uint64{g.Ino}}), "")
	if n, err := c.reap(bg); n != 1 || err != nil {
		t.Fatalf("reap = %d, %v", n, err)
	}
	gone(t, c, f.Ino)
	getattr(t, c, g.Ino)
}

func TestUnknownSessionAdopted(t *testing.T) {
	c, clk := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	// A session this process never heard of (it restarted) says it holds f.
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f", Session: "late"}), "")
	getattr(t, c, f.Ino)
	clk.advance(testTTL + 1)
	if n, err := c.reap(bg); n != 1 || err != nil {
		t.Fatalf("reap of the silent session's orphan = %d, %v", n, err)
	}
	gone(t, c, f.Ino)
}

func lastLogSeq(t *testing.T, c *core) uint64 {
	t.Helper()
	it := c.db.NewIterator(util.BytesPrefix([]byte{pLog}), nil)
	defer it.Release()
	if !it.Last() {
		t.Fatal("empty op log")
	}
	return binary.BigEndian.Uint64(it.Key()[1:])
}

func TestCountersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c, _ := openTestCore(t, dir)
	first := lease(t, c, 100)
	f := mkfile(t, c, wire.RootIno, "f")
	seq := lastLogSeq(t, c)
	if seq != c.ctr.seq {
		t.Fatalf("last log key %d, counter %d", seq, c.ctr.seq)
	}
	c.close()

	c, _ = openTestCore(t, dir)
	second := lease(t, c, 100)
	if second < first+100 {
		t.Fatalf("lease after restart [%d,+100) overlaps [%d,+100)", second, first)
	}
	g := mkfile(t, c, wire.RootIno, "g")
	if g.Ino <= f.Ino {
		t.Fatalf("inode %d reused after restart (had %d)", g.Ino, f.Ino)
	}
	if s := lastLogSeq(t, c); s <= seq {
		t.Fatalf("op-log seq %d after restart, was %d", s, seq)
	}
	// Every op-log entry decodes and replays cleanly.
	it := c.db.NewIterator(util.BytesPrefix([]byte{pLog}), nil)
	defer it.Release()
	var ops []string
	for it.Next() {
		e, err := decodeLogEntry(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, e.Op)
	}
	if !slices.Equal(ops, []string{"init", "heartbeat", "isr", "alloc", "create", "alloc", "create"}) {
		t.Fatalf("op log %v", ops)
	}
}

func TestAlloc(t *testing.T) {
	c, _ := newTestCore(t)
	_, err := c.alloc(bg, &wire.AllocReq{Count: 1})
	wantCode(t, err, wire.CodeUnavailable)
	first := lease(t, c, 4096)
	r, err := c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: 10})
	if err != nil || r.First != first+4096 || r.Group != 1 || !slices.Equal(r.Members, []string{"127.0.0.1:1"}) {
		t.Fatalf("alloc = %+v, %v", r, err)
	}
	for _, n := range []int{0, -1, 4097} {
		_, err := c.alloc(bg, &wire.AllocReq{Count: n})
		wantCode(t, err, wire.CodeInvalid)
	}
	_, err = c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: -1})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: 1 << 41})
	wantCode(t, err, wire.CodeNoSpace)
}

func TestMembersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c, _ := openTestCore(t, dir)
	wantCode(t, beat(c, member("cs1", 1, "127.0.0.1:1")), "")
	wantCode(t, beat(c, member("cs2", 2, "127.0.0.1:2")), "")
	wantCode(t, beat(c, member("cs2", 3, "127.0.0.1:3")), "") // moved group
	c.close()

	c, _ = openTestCore(t, dir)
	gr := c.groups(bg).Groups
	if len(gr) != 2 || gr[0].ID != 1 || gr[1].ID != 3 || gr[1].Members[0].Addr != "127.0.0.1:3" {
		t.Fatalf("groups after restart: %+v", gr)
	}
	for _, g := range gr {
		if g.Members[0].Healthy {
			t.Fatalf("member %s healthy before its first heartbeat", g.Members[0].ID)
		}
	}
	_, err := c.alloc(bg, &wire.AllocReq{Count: 1})
	wantCode(t, err, wire.CodeUnavailable)
	wantCode(t, beat(c, member("cs1", 1, "127.0.0.1:1")), "")
	if gr := c.groups(bg).Groups; !gr[0].Members[0].Healthy {
		t.Fatal("member unhealthy after a heartbeat")
	}
	wantCode(t, beat(c, &wire.Member{Addr: "x"}), wire.CodeInvalid)
	wantCode(t, beat(c, &wire.Member{ID: "x"}), wire.CodeInvalid)
}

// TestResolveOpen: resolve with Open registers an open of a regular file
// (so an unlink leaves it an orphan until the release), answers other
// nodes without one, and checks the session like OpOpen.
func TestResolveOpen(t *testing.T) {
	c, _ := newTestCore(t)
	f, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "f", Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	id := lease(t, c, 1)
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id))
	d := mkdir(t, c, wire.RootIno, "d")

	a, err := c.resolve(bg, &wire.ResolveReq{Path: "/f", Open: true, Session: "s1"})
	if err != nil || a.Ino != f.Ino || a.Size != 100 {
		t.Fatalf("resolve+open /f = %+v, %v", a, err)
	}
	if a, err := c.resolve(bg, &wire.ResolveReq{Path: "/d", Open: true, Session: "s1"}); err != nil || a.Ino != d.Ino {
		t.Fatalf("resolve+open /d = %+v, %v", a, err)
	}
	_, err = c.resolve(bg, &wire.ResolveReq{Path: "/f", Open: true})
	wantCode(t, err, wire.CodeInvalid) // an open needs a session
	_, err = c.resolve(bg, &wire.ResolveReq{Path: "/missing", Open: true, Session: "s1"})
	wantCode(t, err, wire.CodeNotFound)

	// The open holds the file past its unlink, as OpOpen's would.
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	if !has(t, c, keyOrphan(f.Ino)) {
		t.Fatal("unlink of a file opened by resolve did not keep an orphan")
	}
	if rc, err := c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino}); err != nil || len(rc.Slices) != 1 {
		t.Fatalf("orphan readchunk: %+v, %v", rc, err)
	}
	wantCode(t, c.release(bg, &wire.OpenReq{Ino: f.Ino, Session: "s1"}), "")
	gone(t, c, f.Ino)
}

// Stored follows commits, overwrites and truncations: bytes in blocks,
// not the size; holes count nothing.
func TestStoredBytes(t *testing.T) {
	c, _ := newTestCore(t)
	id := lease(t, c, 8)
	f := mkfile(t, c, wire.RootIno, "sparse")
	if a := getattr(t, c, f.Ino); a.Flags&wire.AttrStored == 0 || a.Stored != 0 {
		t.Fatalf("new file: flags %#x stored %d", a.Flags, a.Stored)
	}
	steps := []struct {
		name   string
		do     func() wire.Attr
		size   uint64
		stored uint64
	}{
		{"1 MiB at 512 MiB", func() wire.Attr {
			return commit(t, c, f.Ino, 0, slice(8, 0, 1<<20, id))
		}, 512<<20 + 1<<20, 1 << 20},
		{"overwrite half of it", func() wire.Attr {
			return commit(t, c, f.Ino, 0, slice(8, 0, 512<<10, id+1))
		}, 512<<20 + 1<<20, 1 << 20},
		{"100 bytes at 0", func() wire.Attr {
			return commit(t, c, f.Ino, 0, slice(0, 0, 100, id+2))
		}, 512<<20 + 1<<20, 1<<20 + 100},
		{"extend to 1 GiB (a hole)", func() wire.Attr {
			a, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}, 1 << 30, 1<<20 + 100},
		{"truncate into the 1 MiB", func() wire.Attr {
			a, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: 512<<20 + 1000})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}, 512<<20 + 1000, 1000 + 100},
		{"truncate below it", func() wire.Attr {
			a, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: 50})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}, 50, 50},
	}
	for _, s := range steps {
		a := s.do()
		if a.Size != s.size || a.Stored != s.stored {
			t.Fatalf("%s: size %d stored %d, want %d and %d", s.name, a.Size, a.Stored, s.size, s.stored)
		}
		if g := getattr(t, c, f.Ino); g.Stored != s.stored {
			t.Fatalf("%s: stored %d after a reread, want %d", s.name, g.Stored, s.stored)
		}
	}
	// A record of the old length (no Stored, no AttrStored) still decodes.
	n, err := decodeInode(f.Ino, encodeInode(&inode{Attr: wire.Attr{Ino: f.Ino, Mode: wire.ModeRegular | 0o644, Size: 9}})[:inodeLenV2])
	if err != nil || n.Flags&wire.AttrStored != 0 || n.Size != 9 {
		t.Fatalf("old record: %+v, %v", n, err)
	}
}
