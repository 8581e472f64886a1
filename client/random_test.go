package client

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// randomFile is one file of TestRandomOps and its expected content.
type randomFile struct {
	path       string
	base, span int64 // ops touch [base, base+span)
	maxWrite   int
	model      []byte
	f          *File
}

func (rf *randomFile) write(off int64, p []byte) {
	if end := off + int64(len(p)); end > int64(len(rf.model)) {
		rf.model = append(rf.model, make([]byte, end-int64(len(rf.model)))...)
	}
	copy(rf.model[off:], p)
}

func (rf *randomFile) truncate(size int64) {
	if size <= int64(len(rf.model)) {
		rf.model = rf.model[:size]
		return
	}
	rf.model = append(rf.model, make([]byte, size-int64(len(rf.model)))...)
}

// TestRandomOps runs random writes, reads, truncations, flushes, syncs and
// reopens on three files and checks every read, through the writing
// client and through a second one after commits, against a byte model.
// Small blocks, a small write buffer and a small cache make every path
// (block cuts, backpressure, packing, eviction, ranged fetches) busy.
func TestRandomOps(t *testing.T) {
	ops := 2500
	if raceEnabled {
		ops = 700
	}
	if testing.Short() {
		ops = 400
	}
	cl := newCluster(t, clusterOpts{})
	c := cl.client(func(cfg *Config) {
		cfg.BlockSize = 256 << 10
		cfg.WriteBuffer = 1 << 20
		cfg.CacheBytes = 4 << 20
		cfg.Uploads = 4
		cfg.Prefetch = 2
	})
	verifier := cl.client(nil)
	ctx := t.Context()
	rng := rand.New(rand.NewSource(42))
	files := []*randomFile{
		{path: "/r/a", base: 0, span: 6 << 20, maxWrite: 1 << 20},
		{path: "/r/b", base: wire.ChunkSize - 2<<20, span: 4 << 20, maxWrite: 700 << 10}, // across a chunk boundary
		{path: "/r/c", base: 0, span: 300 << 10, maxWrite: 3000},                         // many tiny slices
	}
	if _, err := c.MkdirAll(ctx, "/r", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rf := range files {
		rf.f = mustCreate(t, c, rf.path, os.O_RDWR|os.O_EXCL)
	}
	check := func(op int, what string, rf *randomFile, f *File, off int64, n int) {
		t.Helper()
		got := make([]byte, n)
		m, err := f.ReadAt(ctx, got, off)
		size := int64(len(rf.model))
		want := int(max(0, min(int64(n), size-off)))
		if m != want || (m < n && err != io.EOF) || (m == n && err != nil) {
			t.Fatalf("op %d %s %s: ReadAt(%d, %d) = %d, %v; want %d bytes (size %d)", op, what, rf.path, off, n, m, err, want, size)
		}
		if m > 0 && !bytes.Equal(got[:m], rf.model[off:off+int64(m)]) {
			i := 0
			for got[i] == rf.model[off+int64(i)] {
				i++
			}
			t.Fatalf("op %d %s %s: ReadAt(%d, %d) differs from the model at byte %d", op, what, rf.path, off, n, off+int64(i))
		}
	}
	var counts [8]int
	for op := 0; op < ops; op++ {
		rf := files[rng.Intn(len(files))]
		switch r := rng.Intn(100); {
		case r < 40: // write
			counts[0]++
			off := rf.base + rng.Int63n(rf.span)
			p := make([]byte, 1+rng.Intn(rf.maxWrite))
			rng.Read(p)
			writeAt(t, rf.f, p, off)
			rf.write(off, p)
			if rf.f.Size() != int64(len(rf.model)) {
				t.Fatalf("op %d: size %d after write, model %d", op, rf.f.Size(), len(rf.model))
			}
		case r < 62: // read a random range, sometimes sequentially on
			counts[1]++
			off := rf.base + rng.Int63n(rf.span+1)
			n := 1 + rng.Intn(2*rf.maxWrite)
			check(op, "read", rf, rf.f, off, n)
			if rng.Intn(3) == 0 {
				check(op, "read on", rf, rf.f, off+int64(n), n)
			}
		case r < 68: // truncate
			counts[2]++
			size := rf.base + rng.Int63n(rf.span)
			if rng.Intn(5) == 0 {
				size = 0
			}
			if err := rf.f.Truncate(ctx, size); err != nil {
				t.Fatalf("op %d: truncate %s to %d: %v", op, rf.path, size, err)
			}
			rf.truncate(size)
		case r < 76: // flush
			counts[3]++
			if err := rf.f.Flush(ctx); err != nil {
				t.Fatalf("op %d: flush: %v", op, err)
			}
		case r < 79: // sync
			counts[4]++
			if err := rf.f.Sync(ctx); err != nil {
				t.Fatalf("op %d: sync: %v", op, err)
			}
		case r < 87: // close and reopen
			counts[5]++
			mustClose(t, rf.f)
			rf.f = mustOpen(t, c, rf.path, os.O_RDWR)
			if rf.f.Size() != int64(len(rf.model)) {
				t.Fatalf("op %d: reopened size %d, model %d", op, rf.f.Size(), len(rf.model))
			}
		case r < 92: // another client sees everything committed
			counts[6]++
			if err := rf.f.Flush(ctx); err != nil {
				t.Fatalf("op %d: flush: %v", op, err)
			}
			g := mustOpen(t, verifier, rf.path, os.O_RDONLY)
			if g.Size() != int64(len(rf.model)) {
				t.Fatalf("op %d: verifier sees size %d, model %d", op, g.Size(), len(rf.model))
			}
			from := rf.base
			if from > int64(len(rf.model)) {
				from = 0
			}
			check(op, "verify", rf, g, from, int(int64(len(rf.model))-from)+1)
			mustClose(t, g)
		default: // a second handle of the same client sees unflushed writes
			counts[7]++
			g := mustOpen(t, c, rf.path, os.O_RDONLY)
			off := rf.base + rng.Int63n(rf.span+1)
			check(op, "second handle", rf, g, off, 1+rng.Intn(rf.maxWrite))
			mustClose(t, g)
		}
	}
	for _, rf := range files {
		mustClose(t, rf.f)
		g := mustOpen(t, verifier, rf.path, os.O_RDONLY)
		from := min(rf.base, int64(len(rf.model)))
		check(ops, "final", rf, g, from, int(int64(len(rf.model))-from)+1)
		mustClose(t, g)
	}
	st := c.Stats()
	t.Logf("ops write/read/truncate/flush/sync/reopen/verify/handle = %v; stats %s", counts, fmtStats(st))
}

func fmtStats(s Stats) string {
	return fmt.Sprintf("puts=%d fetched=%d hits=%d misses=%d commits=%d retries=%d",
		s.BlockPuts, s.BlocksFetched, s.CacheHits, s.CacheMisses, s.Commits, s.Retries)
}
