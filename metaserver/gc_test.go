package metaserver

import (
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb/util"
	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

const testSecret = "s3cret"

// fakeChunkserver serves the two chunkserver calls the collector makes.
type fakeChunkserver struct {
	addr string

	mu       sync.Mutex
	blocks   map[uint64]wire.BlockInfo
	fail     map[uint64]int // block -> DELETEs still to answer with 500
	deletes  []uint64       // successful DELETEs, in order
	unauth   int            // requests without the secret
	pageSize int            // most blocks per listing page, whatever the limit
}

func startFakeChunkserver(t *testing.T) *fakeChunkserver {
	t.Helper()
	f := &fakeChunkserver{blocks: map[uint64]wire.BlockInfo{}, fail: map[uint64]int{}, pageSize: 1000}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	srv := &fasthttp.Server{Handler: f.handle}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return f
}

func (f *fakeChunkserver) handle(rc *fasthttp.RequestCtx) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !wire.Authorized(rc, testSecret) {
		f.unauth++
		wire.ReplyError(rc, wire.ErrUnauthorized)
		return
	}
	path := string(rc.Path())
	switch {
	case rc.IsDelete() && strings.HasPrefix(path, wire.PathBlock):
		id, err := wire.ParseBlockName(strings.TrimPrefix(path, wire.PathBlock))
		if err != nil {
			wire.ReplyError(rc, err)
			return
		}
		if f.fail[id] > 0 {
			f.fail[id]--
			rc.SetStatusCode(500)
			return
		}
		if _, ok := f.blocks[id]; !ok {
			wire.ReplyError(rc, wire.ErrNotFound)
			return
		}
		delete(f.blocks, id)
		f.deletes = append(f.deletes, id)
	case rc.IsGet() && path == wire.PathBlocks:
		args := rc.QueryArgs()
		after, _ := strconv.ParseUint(string(args.Peek("after")), 10, 64)
		limit, _ := strconv.Atoi(string(args.Peek("limit")))
		before, _ := strconv.ParseInt(string(args.Peek("before")), 10, 64)
		var ids []uint64
		for id, b := range f.blocks {
			if id > after && (before == 0 || b.Mtime < before) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		n := min(limit, f.pageSize)
		var page wire.BlockList
		if len(ids) > n {
			ids, page.More = ids[:n], true
		}
		for _, id := range ids {
			page.Blocks = append(page.Blocks, f.blocks[id])
		}
		wire.ReplyJSON(rc, page)
	default:
		rc.SetStatusCode(404)
	}
}

func (f *fakeChunkserver) put(id uint64, mtime time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks[id] = wire.BlockInfo{ID: id, Size: 100, Mtime: mtime.UnixNano()}
}

func (f *fakeChunkserver) holds(id uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.blocks[id]
	return ok
}

func newTestCollector(c *core, keep int) *collector {
	return newCollector(c, testSecret, 10*time.Minute, keep, slog.New(slog.DiscardHandler))
}

func TestDrainQueue(t *testing.T) {
	c, clk := newTestCore(t)
	cs1 := startFakeChunkserver(t)
	cs2 := startFakeChunkserver(t)
	wantCode(t, beat(c, member("cs1", 1, cs1.addr)), "")
	wantCode(t, beat(c, member("cs2", 1, cs2.addr)), "")
	gc := newTestCollector(c, 100)

	f := mkfile(t, c, wire.RootIno, "f")
	r, err := c.alloc(bg, &wire.AllocReq{Count: 3, Bytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	id := r.First
	for i := uint64(0); i < 3; i++ {
		cs1.put(id+i, clk.now())
		if i != 1 { // cs2 lost block id+1: its DELETE answers 404
			cs2.put(id+i, clk.now())
		}
	}
	commit(t, c, f.Ino, 300, slice(0, 0, 100, id), slice(0, 100, 100, id+1), slice(0, 200, 100, id+2))
	cs2.fail[id+2] = 1 // the first DELETE of id+2 on cs2 fails
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	if q := queuedIDs(t, c); len(q) != 3 {
		t.Fatalf("queue %v", q)
	}

	n, err := gc.drain(bg)
	if err != nil || n != 2 {
		t.Fatalf("first drain = %d, %v; want 2", n, err)
	}
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id + 2}) {
		t.Fatalf("queue after a failed delete: %v", q)
	}
	// Backoff: the failed block is not retried at once.
	if n, err := gc.drain(bg); n != 0 || err != nil {
		t.Fatalf("drain during backoff = %d, %v", n, err)
	}
	clk.advance(2 * time.Second)
	if n, err := gc.drain(bg); n != 1 || err != nil {
		t.Fatalf("retry drain = %d, %v", n, err)
	}
	if q := queuedIDs(t, c); len(q) != 0 || c.ctr.queued != 0 {
		t.Fatalf("queue %v, counter %d after drain", q, c.ctr.queued)
	}
	for i := uint64(0); i < 3; i++ {
		if cs1.holds(id+i) || cs2.holds(id+i) {
			t.Fatalf("block %d survived", id+i)
		}
	}
	if cs1.unauth+cs2.unauth != 0 {
		t.Fatal("collector sent requests without the secret")
	}
	if n, err := gc.drain(bg); n != 0 || err != nil {
		t.Fatalf("drain of an empty queue = %d, %v", n, err)
	}
}

func TestDrainWaitsForUnreachableMember(t *testing.T) {
	c, clk := newTestCore(t)
	gc := newTestCollector(c, 100)
	// A group whose only member does not answer keeps its blocks queued.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	wantCode(t, beat(c, member("dead", 1, dead)), "")
	f := mkfile(t, c, wire.RootIno, "f")
	id := lease(t, c, 1)
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id))
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	for i := 0; i < 3; i++ {
		if n, _ := gc.drain(bg); n != 0 {
			t.Fatalf("drained %d blocks from an unreachable group", n)
		}
		clk.advance(time.Hour)
	}
	if q := queuedIDs(t, c); len(q) != 1 {
		t.Fatalf("queue %v", q)
	}
}

// A member that is down does not hold the queue: the healthy members
// delete, and the one that is down learns of it from their binlogs.
func TestDrainSkipsDownMember(t *testing.T) {
	c, clk := newTestCore(t)
	cs1 := startFakeChunkserver(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	wantCode(t, beat(c, member("dead", 1, dead)), "")
	clk.advance(time.Hour) // "dead" stops heartbeating
	f := mkfile(t, c, wire.RootIno, "f")
	id := lease(t, c, 1)
	wantCode(t, beat(c, member("cs1", 1, cs1.addr)), "") // lease beat cs1 at another address
	cs1.put(id, clk.now())
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id))
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	gc := newTestCollector(c, 100)
	if n, err := gc.drain(bg); n != 1 || err != nil {
		t.Fatalf("drain with a member down = %d, %v; want 1", n, err)
	}
	if cs1.holds(id) || len(queuedIDs(t, c)) != 0 {
		t.Fatal("block not deleted on the healthy member, or still queued")
	}
}

// A block that no healthy member holds may be on a member that is down
// alone (a PUT that reached it, then failed before it replicated): no
// binlog carries its delete, so it stays queued until that member is
// back, and is then deleted there. A chaos run found group inventories
// apart for minutes after healing without this.
func TestDrainWaitsForDownMemberWhenNoneHeldIt(t *testing.T) {
	c, clk := newTestCore(t)
	cs1 := startFakeChunkserver(t)
	cs2 := startFakeChunkserver(t)
	wantCode(t, beat(c, member("cs2", 1, cs2.addr)), "")
	clk.advance(time.Hour) // cs2 stops heartbeating: down
	f := mkfile(t, c, wire.RootIno, "f")
	id := lease(t, c, 2)
	wantCode(t, beat(c, member("cs1", 1, cs1.addr)), "")
	cs2.put(id, clk.now())   // only the member that is down has it
	cs1.put(id+1, clk.now()) // a healthy member has this one
	commit(t, c, f.Ino, 200, slice(0, 0, 100, id), slice(0, 100, 100, id+1))
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "f"}), "")
	gc := newTestCollector(c, 100)
	if n, err := gc.drain(bg); n != 1 || err != nil {
		t.Fatalf("drain with the holder down = %d, %v; want 1 (the block cs1 held)", n, err)
	}
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id}) {
		t.Fatalf("queue %v, want [%d] (waiting for cs2)", q, id)
	}
	for i := 0; i < 3; i++ { // still down: it keeps waiting
		clk.advance(10 * time.Minute)
		wantCode(t, beat(c, member("cs1", 1, cs1.addr)), "")
		if n, err := gc.drain(bg); n != 0 || err != nil {
			t.Fatalf("drain %d with the holder still down = %d, %v", i, n, err)
		}
	}
	wantCode(t, beat(c, member("cs2", 1, cs2.addr)), "") // back
	clk.advance(10 * time.Minute)
	wantCode(t, beat(c, member("cs1", 1, cs1.addr)), "")
	wantCode(t, beat(c, member("cs2", 1, cs2.addr)), "")
	if n, err := gc.drain(bg); n != 1 || err != nil {
		t.Fatalf("drain with the holder back = %d, %v; want 1", n, err)
	}
	if cs2.holds(id) || len(queuedIDs(t, c)) != 0 {
		t.Fatal("the block of the member that was down survived, or is still queued")
	}
}

func TestCollectUploads(t *testing.T) {
	c, clk := newTestCore(t)
	clk.advance(testTTL + time.Second) // past the wait after a start
	cs := startFakeChunkserver(t)
	cs.pageSize = 2 // force paging
	wantCode(t, beat(c, member("cs1", 1, cs.addr)), "")
	gc := newTestCollector(c, 100)

	r, err := c.alloc(bg, &wire.AllocReq{Count: 5, Bytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := r.First
	old := clk.now().Add(-time.Hour)
	f := mkfile(t, c, wire.RootIno, "f")
	commit(t, c, f.Ino, 100, slice(0, 0, 100, id)) // committed
	cs.put(id, old)
	cs.put(id+1, old)       // abandoned upload: collected
	cs.put(id+2, clk.now()) // fresh upload: within the grace period
	cs.put(id+3, old)       // abandoned too
	cs.put(id+4, old)       // already queued
	cs.put(id+100, old)     // never leased: not ours to judge
	if _, err := c.queueUnreferenced([]uint64{id + 4}, 1); err != nil {
		t.Fatal(err)
	}
	n, err := gc.collectUploads(bg)
	if err != nil || n != 2 {
		t.Fatalf("collectUploads = %d, %v; want 2", n, err)
	}
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id + 1, id + 3, id + 4}) {
		t.Fatalf("queue %v", q)
	}
	if c.ctr.queued != 3 {
		t.Fatalf("queue counter %d", c.ctr.queued)
	}
	// A queued block can no longer be committed.
	_, err = c.commit(bg, &wire.CommitReq{Ino: f.Ino, Slices: []wire.ChunkSlice{slice(0, 100, 100, id+1)}})
	wantCode(t, err, wire.CodeInvalid)
	// Draining deletes exactly the queued blocks.
	if n, err := gc.drain(bg); n != 3 || err != nil {
		t.Fatalf("drain = %d, %v", n, err)
	}
	for _, b := range []uint64{id, id + 2, id + 100} {
		if !cs.holds(b) {
			t.Fatalf("block %d was deleted", b)
		}
	}
}

func TestTrimLog(t *testing.T) {
	c, _ := newTestCore(t)
	gc := newTestCollector(c, 5)
	for i := 0; i < 20; i++ {
		mkfile(t, c, wire.RootIno, "f"+strconv.Itoa(i))
	}
	n, err := gc.trimLog(bg)
	if err != nil || n != int(c.ctr.seq)-5 {
		t.Fatalf("trim = %d, %v (last seq %d)", n, err, c.ctr.seq)
	}
	var seqs []uint64
	it := c.db.NewIterator(util.BytesPrefix([]byte{pLog}), nil)
	for it.Next() {
		seqs = append(seqs, keyID(it.Key()))
	}
	it.Release()
	last := c.ctr.seq
	if !slices.Equal(seqs, []uint64{last - 4, last - 3, last - 2, last - 1, last}) {
		t.Fatalf("log after trim: %v (last %d)", seqs, last)
	}
	if n, err := gc.trimLog(bg); n != 0 || err != nil {
		t.Fatalf("second trim = %d, %v", n, err)
	}
}
