package metaserver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/reelfs/reelfs/internal/wire"
)

// fakeClock is a settable clock for the core.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

const testTTL = 30 * time.Second

func testCoreConfig(dir string) coreConfig {
	return coreConfig{
		Dir:              dir,
		SessionTTL:       testTTL,
		HeartbeatTimeout: 10 * time.Second,
		ReadDirLimit:     1000,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// openTestCore opens a core in dir that is closed at cleanup, with a fake
// clock that starts at the real time (so records look sane).
func openTestCore(t *testing.T, dir string) (*core, *fakeClock) {
	t.Helper()
	c, err := openCore(testCoreConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.close() })
	clk := &fakeClock{t: time.Now()}
	c.clock = clk.now
	c.started = clk.now()
	return c, clk
}

func newTestCore(t *testing.T) (*core, *fakeClock) {
	t.Helper()
	return openTestCore(t, t.TempDir())
}

var bg = context.Background()

func wantCode(t *testing.T, err error, code wire.Code) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got success, want %s", code)
	}
	if !errors.Is(err, &wire.Error{Code: code}) {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func mkdir(t *testing.T, c *core, parent uint64, name string) wire.Attr {
	t.Helper()
	a, err := c.create(bg, wire.OpMkdir, &wire.CreateReq{Parent: parent, Name: name, Mode: 0o755})
	if err != nil {
		t.Fatalf("mkdir %q: %v", name, err)
	}
	return a
}

func mkfile(t *testing.T, c *core, parent uint64, name string) wire.Attr {
	t.Helper()
	a, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: parent, Name: name, Mode: 0o644, Exclusive: true})
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return a
}

func getattr(t *testing.T, c *core, ino uint64) wire.Attr {
	t.Helper()
	a, err := c.getAttr(bg, &wire.InoReq{Ino: ino})
	if err != nil {
		t.Fatalf("getattr %d: %v", ino, err)
	}
	return a
}

func lookupIno(t *testing.T, c *core, parent uint64, name string) uint64 {
	t.Helper()
	a, err := c.lookup(bg, &wire.LookupReq{Parent: parent, Name: name})
	if err != nil {
		t.Fatalf("lookup %q: %v", name, err)
	}
	return a.Ino
}

func gone(t *testing.T, c *core, ino uint64) {
	t.Helper()
	_, err := c.getAttr(bg, &wire.InoReq{Ino: ino})
	wantCode(t, err, wire.CodeNotFound)
}

// member is a healthy chunkserver with plenty of room in group g.
func member(id string, g uint32, addr string) *wire.Member {
	return &wire.Member{ID: id, Addr: addr, Group: g, Capacity: 1 << 40, Free: 1 << 40, Healthy: true, MinCopies: 1}
}

// beat sends one heartbeat and keeps only its error.
func beat(c *core, m *wire.Member) error {
	_, err := c.heartbeat(bg, m)
	return err
}

// lease heartbeats a chunkserver in group 1 and leases n ids.
func lease(t *testing.T, c *core, n int) uint64 {
	t.Helper()
	if err := beat(c, member("cs1", 1, "127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	r, err := c.alloc(bg, &wire.AllocReq{Count: n, Bytes: 1 << 20})
	if err != nil {
		t.Fatalf("alloc: %v", err)
	}
	return r.First
}

// slice is a ChunkSlice of a whole block of size bytes in group 1.
func slice(idx uint32, pos, size uint32, id uint64) wire.ChunkSlice {
	return wire.ChunkSlice{Index: idx, Slice: wire.Slice{Pos: pos, Len: size, ID: id, Group: 1, Size: size}}
}

func commit(t *testing.T, c *core, ino uint64, size uint64, ss ...wire.ChunkSlice) wire.Attr {
	t.Helper()
	a, err := c.commit(bg, &wire.CommitReq{Ino: ino, Slices: ss, Size: size})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return a
}

// has reports whether key exists.
func has(t *testing.T, c *core, key []byte) bool {
	t.Helper()
	ok, err := c.db.Has(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// queuedIDs lists the deletion queue.
func queuedIDs(t *testing.T, c *core) []uint64 {
	t.Helper()
	var ids []uint64
	it := c.db.NewIterator(util.BytesPrefix([]byte{pQueue}), nil)
	defer it.Release()
	for it.Next() {
		ids = append(ids, keyID(it.Key()))
	}
	return ids
}

func keyID(k []byte) uint64 {
	var id uint64
	for _, b := range k[1:9] {
		id = id<<8 | uint64(b)
	}
	return id
}

func countPrefix(t *testing.T, c *core, p byte) int {
	t.Helper()
	n := 0
	it := c.db.NewIterator(util.BytesPrefix([]byte{p}), nil)
	defer it.Release()
	for it.Next() {
		n++
	}
	return n
}
