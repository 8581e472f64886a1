package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// pickRange returns a pick for DiskStore.ReadRange that reads n bytes at
// off and records the sizes it was called with.
func pickRange(off, n int64, sizes *[]int64) func(int64) (int64, int64, error) {
	return func(size int64) (int64, int64, error) {
		if sizes != nil {
			*sizes = append(*sizes, size)
		}
		if n < 0 {
			return 0, size, nil // the whole block
		}
		if off > size || n > size-off {
			return 0, 0, fmt.Errorf("%w: %d+%d of %d", ErrUnsatisfiable, off, n, size)
		}
		return off, n, nil
	}
}

// storeRead reads a range with DiskStore.ReadRange and copies it out; n < 0
// reads the whole block.
func storeRead(s *DiskStore, id uint64, off, n int64) ([]byte, error) {
	rr, err := s.ReadRange(context.Background(), id, pickRange(off, n, nil), make([]byte, 0, wire.MaxBlockSize))
	if err != nil {
		if rr.Data != nil || rr.Size != 0 {
			return nil, fmt.Errorf("error %v came with a result %+v", err, rr)
		}
		return nil, err
	}
	return append([]byte(nil), rr.Data...), nil
}

// checkBoth reads the whole block id through ReadRange and through Open
// and wants data from both.
func checkBoth(t *testing.T, s *DiskStore, id uint64, data []byte) {
	t.Helper()
	got, err := storeRead(s, id, 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadRange of %x: %d bytes, err %v; want %d bytes", id, len(got), err, len(data))
	}
	got, err = readAll(context.Background(), s, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Open of %x: %d bytes, err %v; want %d bytes", id, len(got), err, len(data))
	}
}

func TestTrailerCacheFollowsPutAndDelete(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	r := rand.New(rand.NewPCG(5, 6))
	const id = 0x4242

	a := randBytes(r, 3*wire.CRCBlock+17)
	mustPut(t, ts.DiskStore, id, a)
	if n := ts.trailers.len(); n != 0 {
		t.Fatalf("a put filled the cache (%d entries); only reads of the file may", n)
	}
	checkBoth(t, ts.DiskStore, id, a)
	if n := ts.trailers.len(); n != 1 {
		t.Fatalf("%d cached trailers after a read, want 1", n)
	}
	if err := ts.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := ts.trailers.len(); n != 0 {
		t.Fatalf("%d cached trailers after delete, want 0", n)
	}
	if _, err := storeRead(ts.DiskStore, id, 0, 1); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("read after delete: %v, want ENOENT", err)
	}

	// The same id again, with other bytes of another length.
	b := randBytes(r, 2*wire.CRCBlock+5)
	mustPut(t, ts.DiskStore, id, b)
	checkBoth(t, ts.DiskStore, id, b)

	// Damage a data byte while the trailer is cached: reads fail (and
	// never return bytes), a re-PUT replaces the file, reads then work.
	flipByte(t, ts.Path(id), wire.CRCBlock+3)
	if got, err := storeRead(ts.DiskStore, id, wire.CRCBlock, 10); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("read of a damaged piece: %d bytes, err %v; want CHECKSUM", len(got), err)
	}
	if _, err := readAll(ctx, ts.DiskStore, id); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("Open read of a damaged piece: %v, want CHECKSUM", err)
	}
	if created, err := ts.Put(ctx, id, b); err != nil || !created {
		t.Fatalf("repairing put: created=%v err=%v", created, err)
	}
	checkBoth(t, ts.DiskStore, id, b)

	// A damaged copy may also be replaced by other bytes of the same
	// length: the old cached trailer must not judge the new file.
	checkBoth(t, ts.DiskStore, id, b)
	flipByte(t, ts.Path(id), 7)
	c := randBytes(r, len(b))
	if created, err := ts.Put(ctx, id, c); err != nil || !created {
		t.Fatalf("replacing put: created=%v err=%v", created, err)
	}
	checkBoth(t, ts.DiskStore, id, c)
}

func TestTrailerCacheChecksTheFile(t *testing.T) {
	ts := openTestStore(t, t.TempDir(), 0)
	r := rand.New(rand.NewPCG(7, 8))
	const id = 77
	a := randBytes(r, 2*wire.CRCBlock)
	mustPut(t, ts.DiskStore, id, a)
	checkBoth(t, ts.DiskStore, id, a) // cached now

	// Another valid block file renamed over it behind the store's back:
	// a new inode, so the cached trailer is not used for it.
	b := randBytes(r, len(a))
	file := append(append([]byte(nil), b...), appendTrailer(nil, b, castagnoli())...)
	tmp := filepath.Join(t.TempDir(), "swap")
	if err := os.WriteFile(tmp, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, ts.Path(id)); err != nil {
		t.Fatal(err)
	}
	checkBoth(t, ts.DiskStore, id, b)

	// Truncated into the data while cached: the size no longer matches,
	// the file's own trailer is read and the damage reported.
	checkBoth(t, ts.DiskStore, id, b)
	if err := os.Truncate(ts.Path(id), int64(len(b))-1); err != nil {
		t.Fatal(err)
	}
	for _, read := range []func() error{
		func() error { _, err := storeRead(ts.DiskStore, id, 0, 10); return err },
		func() error { _, err := readAll(context.Background(), ts.DiskStore, id); return err },
	} {
		if err := read(); !errors.Is(err, wire.ErrChecksum) || !errors.Is(err, ErrTrailer) {
			t.Fatalf("read of a truncated file: %v, want CHECKSUM and ErrTrailer", err)
		}
	}
}

func TestTrailerCacheUnit(t *testing.T) {
	dir := t.TempDir()
	stat := func(name string) os.FileInfo {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	fa, fb, fc := stat("a"), stat("b"), stat("c")
	tr := func(n int64) trailer { return trailer{length: n, crcs: make([]uint32, 1)} }

	c := newTrailerCache(2)
	c.add(1, c.gen(1), fa, tr(1))
	if got, ok := c.lookup(1, fa); !ok || got.length != 1 {
		t.Fatalf("lookup after add: %v %v", got, ok)
	}
	if _, ok := c.lookup(1, fb); ok {
		t.Fatal("a trailer was served for another file")
	}
	// A fill that began before an invalidation of its stripe is dropped.
	g := c.gen(2)
	c.invalidate(2 + lockStripes)
	c.add(2, g, fb, tr(2))
	if _, ok := c.lookup(2, fb); ok {
		t.Fatal("a fill that raced an invalidation was cached")
	}
	// The bound evicts the least recently used entry.
	c.add(2, c.gen(2), fb, tr(2))
	c.lookup(1, fa)
	c.add(3, c.gen(3), fc, tr(3))
	if c.len() != 2 {
		t.Fatalf("%d entries, bound 2", c.len())
	}
	if _, ok := c.lookup(2, fb); ok {
		t.Fatal("the least recently used entry survived")
	}
	if _, ok := c.lookup(1, fa); !ok {
		t.Fatal("a recently used entry was evicted")
	}
	// drop forgets only the very trailer it is given.
	c.drop(1, tr(1))
	if _, ok := c.lookup(1, fa); !ok {
		t.Fatal("drop of another trailer value removed the entry")
	}
	got, _ := c.lookup(1, fa)
	c.drop(1, got)
	if _, ok := c.lookup(1, fa); ok {
		t.Fatal("drop left the entry")
	}
	// A disabled cache holds nothing.
	off := newTrailerCache(0)
	off.add(1, off.gen(1), fa, tr(1))
	if _, ok := off.lookup(1, fa); ok || off.len() != 0 {
		t.Fatal("a disabled cache cached")
	}
}

func TestReadRangeCorruptTrailer(t *testing.T) {
	ts := openTestStore(t, t.TempDir(), 0)
	data := randBytes(rand.New(rand.NewPCG(9, 10)), 3*wire.CRCBlock+1)
	for i, off := range []int64{
		int64(len(data)) + 1,                   // the CRC table
		fileSizeFor(int64(len(data))) - 9,      // the footer's checksum
		fileSizeFor(int64(len(data))) - 2,      // the magic
		fileSizeFor(int64(len(data))) - 20 + 3, // the length
	} {
		id := uint64(500 + i)
		mustPut(t, ts.DiskStore, id, data)
		if err := flipAt(ts.Path(id), off); err != nil {
			t.Fatal(err)
		}
		got, err := storeRead(ts.DiskStore, id, wire.CRCBlock+10, 100)
		if !errors.Is(err, wire.ErrChecksum) || !errors.Is(err, ErrTrailer) || got != nil {
			t.Fatalf("trailer byte %d flipped: %d bytes, err %v; want CHECKSUM", off, len(got), err)
		}
		// The range is unsatisfiable by the index's size: damage still
		// comes first.
		if _, err := storeRead(ts.DiskStore, id, int64(len(data))+5, 1); !errors.Is(err, wire.ErrChecksum) {
			t.Fatalf("trailer byte %d flipped, range past the end: %v, want CHECKSUM", off, err)
		}
	}
}

func TestReadRangeFollowsTheTrailer(t *testing.T) {
	ts := openTestStore(t, t.TempDir(), 0)
	r := rand.New(rand.NewPCG(11, 12))
	const id = 9
	mustPut(t, ts.DiskStore, id, randBytes(r, 4*wire.CRCBlock))
	// Swap in a shorter valid block behind the index's back: the index
	// says 4 pieces, the trailer 1.
	b := randBytes(r, wire.CRCBlock/2)
	if err := os.WriteFile(ts.Path(id), append(append([]byte(nil), b...), appendTrailer(nil, b, castagnoli())...), 0o644); err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	rr, err := ts.ReadRange(context.Background(), id, pickRange(100, 50, &sizes), nil)
	if err != nil || rr.Size != int64(len(b)) || rr.Off != 100 || !bytes.Equal(rr.Data, b[100:150]) {
		t.Fatalf("read with a stale index: %+v %v", rr, err)
	}
	if sizes[len(sizes)-1] != int64(len(b)) {
		t.Fatalf("pick was last asked with sizes %v, want the trailer's %d", sizes, len(b))
	}
	// A range valid for the index but not for the trailer is refused.
	ts.trailers.invalidate(id)
	if _, err := storeRead(ts.DiskStore, id, 2*wire.CRCBlock, 10); !errors.Is(err, ErrUnsatisfiable) {
		t.Fatalf("range past the trailer's length: %v, want ErrUnsatisfiable", err)
	}
	// A pick that returns a range outside the block is refused too.
	bad := func(size int64) (int64, int64, error) { return size - 1, 2, nil }
	if _, err := ts.ReadRange(context.Background(), id, bad, nil); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("pick outside the block: %v, want EINVAL", err)
	}
	if _, err := storeRead(ts.DiskStore, 12345, 0, 1); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("read of a missing block: %v, want ENOENT", err)
	}
	// Damaged data never comes back, cold or cached.
	mustPut(t, ts.DiskStore, 10, b)
	flipByte(t, ts.Path(10), 40)
	for i := 0; i < 2; i++ {
		if got, err := storeRead(ts.DiskStore, 10, 30, 20); !errors.Is(err, wire.ErrChecksum) || got != nil {
			t.Fatalf("read %d of damaged data: %d bytes, err %v", i, len(got), err)
		}
	}
}

func TestReadRangeConcurrent(t *testing.T) {
	for _, cache := range []int{0, 1024} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenDiskStore(context.Background(), dir, StoreOptions{Name: "race@127.0.0.1:1", TrailerCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			r := rand.New(rand.NewPCG(13, 14))
			blocks := make([][]byte, 4)
			for i := range blocks {
				blocks[i] = randBytes(r, 5*wire.CRCBlock+i*1000)
				mustPut(t, s, uint64(i+1), blocks[i])
			}
			rounds := 60
			if testing.Short() {
				rounds = 15
			}
			var wg sync.WaitGroup
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 99))
					buf := make([]byte, wire.MaxBlockSize)
					for i := 0; i < rounds; i++ {
						k := r.IntN(len(blocks))
						data := blocks[k]
						off := r.Int64N(int64(len(data)))
						n := r.Int64N(int64(len(data))-off) + 1
						if i%3 == 0 {
							got, err := readRange(context.Background(), s, uint64(k+1), off, n)
							if err != nil || !bytes.Equal(got, data[off:off+n]) {
								t.Errorf("Open read %d+%d of block %d: %v", off, n, k+1, err)
								return
							}
							continue
						}
						rr, err := s.ReadRange(context.Background(), uint64(k+1), pickRange(off, n, nil), buf)
						if err != nil || !bytes.Equal(rr.Data, data[off:off+n]) || rr.Size != int64(len(data)) {
							t.Errorf("read %d+%d of block %d: %v", off, n, k+1, err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// failingLog is a ChangeLog whose appends fail.
type failingLog struct{ calls int }

func (l *failingLog) Append(context.Context, wire.BinlogEntry) (uint64, error) {
	l.calls++
	return 0, fmt.Errorf("%w: disk on fire", ErrBinlogFailed)
}
func (l *failingLog) Err() error { return nil }

func TestPutLogFailureIndexesTheBlock(t *testing.T) {
	ctx := context.Background()
	log := &failingLog{}
	s, err := OpenDiskStore(ctx, t.TempDir(), StoreOptions{Changes: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := []byte("unlogged")
	if _, err := s.Put(ctx, 3, data); !errors.Is(err, ErrBinlogFailed) {
		t.Fatalf("put with a failing log: %v", err)
	}
	if log.calls != 1 {
		t.Fatalf("%d appends, want 1", log.calls)
	}
	if info, err := s.Stat(ctx, 3); err != nil || info.Size != uint32(len(data)) {
		t.Fatalf("the block on disk is not indexed: %+v %v", info, err)
	}
	checkBoth(t, s, 3, data)
}
