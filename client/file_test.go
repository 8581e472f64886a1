package client

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// randReader yields deterministic pseudo-random bytes.
func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func mustCreate(t *testing.T, c *Client, path string, flags int) *File {
	t.Helper()
	f, err := c.CreatePath(t.Context(), path, 0o644, flags)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	return f
}

// putFile creates path with data through c and closes it (committed).
func putFile(t *testing.T, c *Client, path string, data []byte) {
	t.Helper()
	f := mustCreate(t, c, path, os.O_WRONLY)
	writeAt(t, f, data, 0)
	mustClose(t, f)
}

func mustOpen(t *testing.T, c *Client, path string, flags int) *File {
	t.Helper()
	f, err := c.OpenPath(t.Context(), path, flags)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f
}

func mustClose(t *testing.T, f *File) {
	t.Helper()
	if err := f.Close(t.Context()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	b, err := io.ReadAll(f.IO(t.Context()))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func writeAt(t *testing.T, f *File, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(t.Context(), p, off); err != nil || n != len(p) {
		t.Fatalf("write %d at %d: n=%d err=%v", len(p), off, n, err)
	}
}

func TestLargeWriteReadBack(t *testing.T) {
	size := int64(200 << 20)
	if raceEnabled {
		size = 64 << 20
	}
	if testing.Short() {
		size = 24 << 20
	}
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()

	f := mustCreate(t, c, "/big", os.O_WRONLY)
	src := rand.New(rand.NewSource(1))
	wantSum := sha256.New()
	w := f.IO(ctx)
	buf := make([]byte, 1<<20+12345) // odd size: writes straddle blocks
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		src.Read(buf[:n])
		wantSum.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		left -= n
	}
	if f.Size() != size {
		t.Fatalf("size %d, want %d", f.Size(), size)
	}
	mustClose(t, f)
	st := c.Stats()
	if st.BlockPuts < size/(4<<20) || st.BytesWritten != size {
		t.Fatalf("stats after write: %+v", st)
	}

	// A second client reads it back (close-to-open) sequentially.
	r := cl.client(nil)
	attr, err := r.Resolve(ctx, "/big")
	if err != nil || int64(attr.Size) != size {
		t.Fatalf("resolve: %+v %v", attr, err)
	}
	g := mustOpen(t, r, "/big", os.O_RDONLY)
	gotSum := sha256.New()
	n, err := io.CopyBuffer(gotSum, g.IO(ctx), make([]byte, 256<<10))
	if err != nil || n != size {
		t.Fatalf("read back %d bytes: %v", n, err)
	}
	if !bytes.Equal(gotSum.Sum(nil), wantSum.Sum(nil)) {
		t.Fatal("sha256 of the data read back differs")
	}
	mustClose(t, g)
	rs := r.Stats()
	if rs.BlocksFetched == 0 || rs.CacheHits == 0 || rs.Prefetches == 0 {
		t.Fatalf("sequential read did not use whole-block fetches, cache and prefetch: %+v", rs)
	}
}

func TestOverwriteMiddle(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	model := randBytes(2, 20<<20)
	f := mustCreate(t, c, "/ow", os.O_WRONLY)
	writeAt(t, f, model, 0)
	mustClose(t, f)

	patch := randBytes(3, 1<<20)
	off := int64(9<<20 + 512<<10) // straddles blocks 2 and 3
	f = mustOpen(t, c, "/ow", os.O_RDWR)
	v0 := f.Version()
	writeAt(t, f, patch, off)
	copy(model[off:], patch)
	got := make([]byte, 3<<20)
	if _, err := f.ReadAt(ctx, got, off-(1<<20)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, model[off-(1<<20):off+(2<<20)]) {
		t.Fatal("read through the writing handle misses the unflushed patch")
	}
	mustClose(t, f)

	r := cl.client(nil)
	g := mustOpen(t, r, "/ow", os.O_RDONLY)
	if g.Version() <= v0 {
		t.Fatalf("version %d did not move past %d after the commit", g.Version(), v0)
	}
	if !bytes.Equal(readAll(t, g), model) {
		t.Fatal("second client reads wrong bytes after the overwrite")
	}
	mustClose(t, g)
}

func TestSparseWriteReadsZeros(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	f := mustCreate(t, c, "/sparse", os.O_RDWR)
	tail := randBytes(4, 100)
	writeAt(t, f, tail, 10<<20)
	if f.Size() != 10<<20+100 {
		t.Fatalf("size %d", f.Size())
	}
	check := func(f *File) {
		t.Helper()
		b := make([]byte, 10<<20+200)
		n, err := f.ReadAt(ctx, b, 0)
		if n != 10<<20+100 || err != io.EOF {
			t.Fatalf("read n=%d err=%v, want %d and EOF", n, err, 10<<20+100)
		}
		if !bytes.Equal(b[:10<<20], make([]byte, 10<<20)) || !bytes.Equal(b[10<<20:n], tail) {
			t.Fatal("hole is not zeros or tail wrong")
		}
	}
	check(f)
	mustClose(t, f)
	g := mustOpen(t, cl.client(nil), "/sparse", os.O_RDONLY)
	check(g)
	mustClose(t, g)
}

func TestTruncate(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	model := randBytes(5, 8<<20)
	f := mustCreate(t, c, "/tr", os.O_RDWR)
	writeAt(t, f, model, 0)
	mustClose(t, f)

	f = mustOpen(t, c, "/tr", os.O_RDWR)
	// Dirty bytes past the new size are dropped, not committed.
	writeAt(t, f, randBytes(6, 1<<20), 7<<20)
	if err := f.Truncate(ctx, 3<<20+5); err != nil {
		t.Fatal(err)
	}
	model = model[:3<<20+5]
	if got := readAll(t, f); !bytes.Equal(got, model) {
		t.Fatalf("after truncate down: %d bytes, want %d", len(got), len(model))
	}
	if err := f.Truncate(ctx, 6<<20); err != nil { // up: a hole
		t.Fatal(err)
	}
	model = append(model, make([]byte, 6<<20-len(model))...)
	extra := randBytes(7, 1000)
	writeAt(t, f, extra, 5<<20)
	copy(model[5<<20:], extra)
	if got := readAll(t, f); !bytes.Equal(got, model) {
		t.Fatal("after truncate up and write: content differs")
	}
	attr, err := c.GetAttr(ctx, f.Ino())
	if err != nil || attr.Size != 6<<20 {
		t.Fatalf("getattr: size %d err %v", attr.Size, err)
	}
	mustClose(t, f)

	// O_TRUNC empties the file.
	g := mustOpen(t, cl.client(nil), "/tr", os.O_RDONLY)
	if !bytes.Equal(readAll(t, g), model) {
		t.Fatal("second client sees different content")
	}
	mustClose(t, g)
	h := mustOpen(t, c, "/tr", os.O_WRONLY|os.O_TRUNC)
	if h.Size() != 0 {
		t.Fatalf("O_TRUNC left %d bytes", h.Size())
	}
	mustClose(t, h)
	if a, _ := c.Resolve(ctx, "/tr"); a.Size != 0 {
		t.Fatalf("size %d after O_TRUNC", a.Size)
	}
	// SetAttr through the client (as FUSE does) truncates the shared state.
	h = mustOpen(t, c, "/tr", os.O_RDWR)
	writeAt(t, h, randBytes(8, 2<<20), 0)
	if _, err := c.SetAttr(ctx, wire.SetAttrReq{Ino: h.Ino(), Valid: wire.SetSize, Size: 1000}); err != nil {
		t.Fatal(err)
	}
	if h.Size() != 1000 || len(readAll(t, h)) != 1000 {
		t.Fatalf("setattr size: local size %d", h.Size())
	}
	mustClose(t, h)
	if _, err := f.ReadAt(ctx, make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
}

func TestAppend(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	f := mustCreate(t, c, "/log", os.O_WRONLY)
	writeAt(t, f, []byte("head."), 0)
	mustClose(t, f)

	a := mustOpen(t, c, "/log", os.O_WRONLY|os.O_APPEND)
	b := mustOpen(t, c, "/log", os.O_WRONLY|os.O_APPEND)
	writeAt(t, a, []byte("one."), 0) // offsets are ignored
	writeAt(t, b, []byte("two."), 2)
	big := bytes.Repeat([]byte("x"), 5<<20) // more than a block in one call
	if _, err := b.IO(ctx).Write(big); err != nil {
		t.Fatal(err)
	}
	writeAt(t, a, []byte("three."), 0)
	mustClose(t, a)
	mustClose(t, b)
	r := mustOpen(t, cl.client(nil), "/log", os.O_RDONLY)
	want := "head.one.two." + string(big) + "three."
	if got := readAll(t, r); string(got) != want {
		t.Fatalf("appended content: %d bytes, want %d", len(got), len(want))
	}
	mustClose(t, r)
}

func TestHandlesShareState(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	w := mustCreate(t, c, "/shared", os.O_WRONLY)
	r := mustOpen(t, c, "/shared", os.O_RDONLY)
	data := randBytes(9, 6<<20+7)
	writeAt(t, w, data, 0)
	if r.Size() != int64(len(data)) {
		t.Fatalf("reader sees size %d", r.Size())
	}
	got := make([]byte, len(data))
	if _, err := r.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reader does not see the writer's data: %v", err)
	}
	attr, err := c.Lookup(ctx, wire.RootIno, "shared")
	if err != nil || attr.Size != uint64(len(data)) {
		t.Fatalf("lookup reports size %d (%v), want the local %d", attr.Size, err, len(data))
	}
	// Another client sees nothing before the commit.
	other := cl.client(nil)
	if a, err := other.Resolve(ctx, "/shared"); err != nil || a.Size != 0 {
		t.Fatalf("other client: size %d before commit (%v)", a.Size, err)
	}
	if _, err := r.WriteAt(ctx, []byte("x"), 0); !errors.Is(err, ErrReadOnly) || !errors.Is(err, wire.ErrPerm) {
		t.Fatalf("write on read-only handle: %v", err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := other.Resolve(ctx, "/shared"); err != nil || a.Size != uint64(len(data)) {
		t.Fatalf("other client: size %d after flush (%v)", a.Size, err)
	}
	mustClose(t, w)
	mustClose(t, r)
}

func TestCloseToOpen(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	a, b := cl.client(nil), cl.client(nil)
	v1 := randBytes(10, 3<<20)
	f := mustCreate(t, a, "/c2o", os.O_WRONLY)
	writeAt(t, f, v1, 0)
	mustClose(t, f)

	g := mustOpen(t, b, "/c2o", os.O_RDONLY)
	if !bytes.Equal(readAll(t, g), v1) {
		t.Fatal("b: first version wrong")
	}
	mustClose(t, g)

	// a overwrites part of it; b has the old slice list cached and must
	// drop it on its next open.
	v2 := randBytes(11, 1<<20)
	f = mustOpen(t, a, "/c2o", os.O_WRONLY)
	writeAt(t, f, v2, 1<<20)
	mustClose(t, f)
	copy(v1[1<<20:], v2)
	g = mustOpen(t, b, "/c2o", os.O_RDONLY)
	if !bytes.Equal(readAll(t, g), v1) {
		t.Fatal("b: reopened file shows stale data")
	}
	mustClose(t, g)
}

func TestUnlinkWhileOpen(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	before := len(cl.allBlocks())
	f := mustCreate(t, c, "/orphan", os.O_RDWR)
	data := randBytes(12, 9<<20)
	writeAt(t, f, data, 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(cl.allBlocks()); got <= before {
		t.Fatalf("no blocks stored after flush (%d)", got)
	}
	if err := c.RemovePath(ctx, "/orphan", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(ctx, "/orphan"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("resolve after unlink: %v", err)
	}
	// Still readable and writable, committed data included.
	more := randBytes(13, 2<<20)
	writeAt(t, f, more, int64(len(data)))
	if err := f.Flush(ctx); err != nil {
		t.Fatalf("flush of an orphan: %v", err)
	}
	data = append(data, more...)
	if !bytes.Equal(readAll(t, f), data) {
		t.Fatal("orphan reads wrong bytes")
	}
	mustClose(t, f)
	eventually(t, "orphan blocks deleted", 30*time.Second, func() bool {
		return len(cl.allBlocks()) == before
	})
}

func TestCorruptBlock(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	data := randBytes(14, 2<<20)
	f := mustCreate(t, c, "/bad", os.O_WRONLY)
	writeAt(t, f, data, 0)
	mustClose(t, f)

	var id uint64
	for b := range cl.allBlocks() {
		id = b
	}
	var holder *testChunk
	var path string
	for _, tc := range cl.chunks {
		if p, ok := tc.blockFile(id); ok {
			holder, path = tc, p
			break
		}
	}
	if holder == nil {
		t.Fatalf("block %s on no disk", wire.BlockName(id))
	}
	corrupt(t, path, 1<<20)
	// A copy on another member? Then delete it: both must be unreadable.
	for _, tc := range cl.chunks {
		if p, ok := tc.blockFile(id); ok && tc != holder {
			corrupt(t, p, 1<<20)
		}
	}

	r := cl.client(func(cfg *Config) { cfg.RetryTimeout = time.Second })
	g := mustOpen(t, r, "/bad", os.O_RDONLY)
	_, err := g.ReadAt(ctx, make([]byte, 4096), 1<<20)
	if !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("read of a corrupt block: %v, want a CHECKSUM error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, wire.BlockName(id)) || !strings.Contains(msg, holder.addr) {
		t.Fatalf("error %q does not name block %s and server %s", msg, wire.BlockName(id), holder.addr)
	}
	mustClose(t, g)

	// With a good copy on another member the read succeeds from it.
	var other *testChunk
	for _, tc := range cl.chunks {
		if tc != holder {
			other = tc
		}
	}
	// The file is one block: its bytes are the block's.
	if err := r.putBlock(ctx, other.addr, id, data, crcHex(r, data)); err != nil {
		t.Fatalf("put a good copy: %v", err)
	}
	g = mustOpen(t, r, "/bad", os.O_RDONLY)
	if got := readAll(t, g); !bytes.Equal(got, data) {
		t.Fatal("read with one good member returns wrong data")
	}
	mustClose(t, g)
}

func TestNoSpace(t *testing.T) {
	cl := newCluster(t, clusterOpts{reserve: 1 << 62})
	c := cl.client(func(cfg *Config) { cfg.RetryTimeout = 2 * time.Second })
	ctx := t.Context()
	f := mustCreate(t, c, "/full", os.O_WRONLY)
	_, werr := f.WriteAt(ctx, randBytes(15, 5<<20), 0)
	ferr := f.Close(ctx)
	if !errors.Is(werr, wire.ErrNoSpace) && !errors.Is(ferr, wire.ErrNoSpace) {
		t.Fatalf("write %v, close %v: want wire.ErrNoSpace", werr, ferr)
	}
}

func TestMetaserverRestartIsRetried(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	if _, err := c.MkdirAll(ctx, "/survive", 0o755); err != nil {
		t.Fatal(err)
	}
	up := cl.restartMeta(300 * time.Millisecond)
	attr, err := c.Resolve(ctx, "/survive") // retried until the metaserver is back
	if err != nil || !attr.IsDir() {
		t.Fatalf("resolve across a restart: %+v %v", attr, err)
	}
	<-up
	if c.Stats().Retries == 0 {
		t.Fatal("no retries counted across the outage")
	}
}

// TestOpenSurvivesOtherClientsUnlink: the keep-alive carries the open set,
// so an inode another client unlinks stays readable here, and the
// keep-alive after the close lets the metaserver reclaim it.
func TestOpenSurvivesOtherClientsUnlink(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	a, b := cl.client(nil), cl.client(nil)
	ctx := t.Context()
	before := len(cl.allBlocks())
	data := randBytes(16, 3<<20)
	f := mustCreate(t, a, "/held", os.O_WRONLY)
	writeAt(t, f, data, 0)
	mustClose(t, f)
	r := mustOpen(t, a, "/held", os.O_RDONLY)
	time.Sleep(3 * a.cfg.SessionEvery) // a keep-alive or two pass
	if err := b.RemovePath(ctx, "/held", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * a.cfg.SessionEvery)
	if !bytes.Equal(readAll(t, r), data) {
		t.Fatal("held file unreadable after another client unlinked it")
	}
	mustClose(t, r)
	eventually(t, "blocks of the released orphan deleted", 30*time.Second, func() bool {
		return len(cl.allBlocks()) == before
	})
}

// TestConcurrentHandles writes disjoint regions of one file from several
// goroutines, each through its own handle, flushing and reading at random
// meanwhile; the race detector watches the shared inode state.
func TestConcurrentHandles(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(func(cfg *Config) {
		cfg.BlockSize = 128 << 10
		cfg.WriteBuffer = 512 << 10
		cfg.CacheBytes = 4 << 20
	})
	ctx := t.Context()
	const region = 1 << 20
	const workers = 4
	f := mustCreate(t, c, "/conc", os.O_RDWR)
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			errs <- func() error {
				h, err := c.OpenPath(ctx, "/conc", os.O_RDWR)
				if err != nil {
					return err
				}
				defer h.Close(ctx)
				data := randBytes(int64(100+w), region)
				base := int64(w) * region
				for off := 0; off < region; off += 50000 {
					end := min(off+50000, region)
					if _, err := h.WriteAt(ctx, data[off:end], base+int64(off)); err != nil {
						return err
					}
					got := make([]byte, end-off)
					if _, err := h.ReadAt(ctx, got, base+int64(off)); err != nil || !bytes.Equal(got, data[off:end]) {
						return fmt.Errorf("worker %d: read back at %d: %v", w, off, err)
					}
					if off%200000 == 0 {
						if err := h.Flush(ctx); err != nil {
							return err
						}
					}
				}
				return h.Close(ctx)
			}()
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, f)
	g := mustOpen(t, cl.client(nil), "/conc", os.O_RDONLY)
	got := readAll(t, g)
	for w := 0; w < workers; w++ {
		if !bytes.Equal(got[w*region:(w+1)*region], randBytes(int64(100+w), region)) {
			t.Fatalf("region %d wrong after concurrent writes", w)
		}
	}
	mustClose(t, g)
}

// TestSeekFetchesOnlyPages: a read after a seek waits for one ranged GET
// of its own page (not the whole block) while the pages up to readAround
// past its start arrive in the background; the reads that follow in that
// window fetch nothing more, and reads that go on fetch whole blocks and
// prefetch.
func TestSeekFetchesOnlyPages(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	ctx := t.Context()
	data := randBytes(17, 24<<20)
	putFile(t, cl.client(nil), "/movie", data)

	r := cl.client(nil)
	g := mustOpen(t, r, "/movie", os.O_RDONLY)
	off := int64(10<<20 + 300<<10)
	buf := make([]byte, 4096)
	if _, err := g.ReadAt(ctx, buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("seek read: %v", err)
	}
	inBlock := off % wire.MaxBlockSize
	want := ((inBlock+readAround-1)/pageSize - inBlock/pageSize + 1) * pageSize
	if want >= wire.MaxBlockSize {
		t.Fatalf("test layout: read-around of %d bytes covers the block", want)
	}
	eventually(t, "read-around fetched", time.Minute, func() bool { return r.Stats().BlocksFetched >= 2 })
	if st := r.Stats(); st.BlocksFetched != 2 || st.BytesFetched != want {
		t.Fatalf("a 4 KiB read after a seek fetched %d GETs, %d bytes; want 2 GETs (its page, then the read-around) of %d bytes in all",
			st.BlocksFetched, st.BytesFetched, want)
	}
	// The rest of the read-around window is served from the cache.
	rest := make([]byte, readAround-4096)
	if _, err := g.ReadAt(ctx, rest, off+4096); err != nil || !bytes.Equal(rest, data[off+4096:off+readAround]) {
		t.Fatalf("read in the read-around window: %v", err)
	}
	if st := r.Stats(); st.BlocksFetched != 2 {
		t.Fatalf("a read inside the read-around window fetched again: %s", fmtStats(st))
	}
	// Reading on from there is sequential: whole blocks and prefetch.
	big := make([]byte, 256<<10)
	for at := off + 4096; at < off+4096+8<<20; at += int64(len(big)) {
		if _, err := g.ReadAt(ctx, big, at); err != nil || !bytes.Equal(big, data[at:at+int64(len(big))]) {
			t.Fatalf("sequential read at %d: %v", at, err)
		}
	}
	if st := r.Stats(); st.Prefetches == 0 || st.CacheHits == 0 {
		t.Fatalf("sequential reads did not prefetch or hit the cache: %s", fmtStats(st))
	}
	mustClose(t, g)
}

// TestCommitsWhileWriting: an inode with more than ~1,000 uploaded slices
// commits while still being written, so commits stay bounded; the data
// crosses a chunk boundary on real servers.
func TestCommitsWhileWriting(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(func(cfg *Config) {
		cfg.BlockSize = 64 << 10
		cfg.WriteBuffer = 1 << 20
	})
	ctx := t.Context()
	const size = wire.ChunkSize + 2<<20 // 1,056 blocks
	f := mustCreate(t, c, "/many", os.O_WRONLY)
	chunk := randBytes(18, 1<<20)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		writeAt(t, f, chunk, off)
	}
	if c.Stats().Commits == 0 {
		t.Fatal("no commit while writing more than 1,000 blocks")
	}
	other := cl.client(nil)
	if a, err := other.Resolve(ctx, "/many"); err != nil || a.Size == 0 {
		t.Fatalf("nothing visible after the intermediate commit: size %d, %v", a.Size, err)
	}
	mustClose(t, f)
	g := mustOpen(t, other, "/many", os.O_RDONLY)
	buf := make([]byte, 3<<20)
	at := int64(wire.ChunkSize - 1<<20 - 5)
	if _, err := g.ReadAt(ctx, buf, at); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		if buf[i] != chunk[(at+int64(i))%int64(len(chunk))] {
			t.Fatalf("byte %d wrong across the chunk boundary", at+int64(i))
		}
	}
	mustClose(t, g)
}

// TestResolveOpen: one call resolves a path and opens the regular file it
// names; a directory comes back without a File; the open holds the file
// past an unlink by another client until it is closed.
func TestResolveOpen(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	w, r := cl.client(nil), cl.client(nil)
	ctx := t.Context()
	data := randBytes(21, 3<<20)
	putFile(t, w, "/clip.mp4", data)
	if _, err := w.MkdirAll(ctx, "/dir", 0o755); err != nil {
		t.Fatal(err)
	}

	if a, g, err := r.ResolveOpen(ctx, "/dir", os.O_RDONLY); err != nil || g != nil || !a.IsDir() {
		t.Fatalf("ResolveOpen of a directory = %+v, %v, %v", a, g, err)
	}
	if _, _, err := r.ResolveOpen(ctx, "/nope", os.O_RDONLY); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("ResolveOpen of a missing path: %v", err)
	}
	if _, err := r.OpenPath(ctx, "/dir", os.O_RDONLY); !errors.Is(err, wire.ErrIsDir) {
		t.Fatalf("OpenPath of a directory: %v", err)
	}
	a, g, err := r.ResolveOpen(ctx, "/clip.mp4", os.O_RDONLY)
	if err != nil || g == nil || a.Size != uint64(len(data)) {
		t.Fatalf("ResolveOpen of a file = %+v, %v, %v", a, g, err)
	}
	before := len(cl.allBlocks())
	if err := w.RemovePath(ctx, "/clip.mp4", false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, g), data) {
		t.Fatal("a file opened by ResolveOpen reads wrong bytes after its unlink")
	}
	if got := len(cl.allBlocks()); got != before {
		t.Fatalf("blocks of an open file deleted: %d -> %d", before, got)
	}
	mustClose(t, g)
	eventually(t, "blocks deleted after the close", 30*time.Second, func() bool {
		return len(cl.allBlocks()) < before
	})
}

// TestLocalReads: a client given the chunkservers of its own process reads
// their blocks in-process: the same bytes, no block GET over HTTP, and a
// damaged block is still a CHECKSUM error naming block and server.
func TestLocalReads(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	ctx := t.Context()
	data := randBytes(31, 10<<20)
	putFile(t, cl.client(nil), "/local", data)

	local := make(map[string]LocalBlocks)
	// Replication copies blocks between members with GETs: count only
	// the GETs from here on.
	gets := func(addr string) string {
		var lines []string
		for _, l := range strings.Split(cl.metrics(t, addr), "\n") {
			if strings.Contains(l, `method="GET",op="block"`) {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	before := map[string]string{}
	for _, tc := range cl.chunks {
		local[tc.addr] = tc.srv
		before[tc.addr] = gets(tc.addr)
	}
	r := cl.client(func(cfg *Config) { cfg.Local, cfg.RetryTimeout = local, time.Second })
	g := mustOpen(t, r, "/local", os.O_RDONLY)
	if !bytes.Equal(readAll(t, g), data) {
		t.Fatal("local reads returned wrong bytes")
	}
	buf := make([]byte, 100_000)
	if _, err := g.ReadAt(ctx, buf, 7_777_777); err != nil || !bytes.Equal(buf, data[7_777_777:7_877_777]) {
		t.Fatalf("local random read: %v", err)
	}
	st := r.Stats()
	if st.LocalFetches == 0 || st.LocalFetches != st.BlocksFetched || st.FetchErrors != 0 {
		t.Fatalf("want every fetch local: %s", fmtStats(st))
	}
	for _, tc := range cl.chunks {
		if gets(tc.addr) != before[tc.addr] {
			t.Fatalf("chunkserver %s served block GETs over HTTP to a local reader", tc.addr)
		}
	}
	mustClose(t, g)

	var id uint64
	for b := range cl.allBlocks() {
		id = b
		break
	}
	var holder *testChunk
	for _, tc := range cl.chunks {
		if p, ok := tc.blockFile(id); ok {
			corrupt(t, p, 100)
			holder = tc
		}
	}
	fresh := cl.client(func(cfg *Config) { cfg.Local, cfg.RetryTimeout = local, time.Second })
	h := mustOpen(t, fresh, "/local", os.O_RDONLY)
	_, err := io.Copy(io.Discard, h.IO(ctx))
	if !errors.Is(err, wire.ErrChecksum) || !strings.Contains(err.Error(), wire.BlockName(id)) || !strings.Contains(err.Error(), holder.addr) {
		t.Fatalf("local read of a damaged block: %v; want CHECKSUM naming %s and %s", err, wire.BlockName(id), holder.addr)
	}
	mustClose(t, h)
}
