package client

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// TestWriteIntoFullClusterFailsAtWrite: the first write of a small file
// into a full cluster fails with NOSPACE itself, before any byte is
// buffered; so does a later write that the client answers from what it
// learned, and the file stays empty.
func TestWriteIntoFullClusterFailsAtWrite(t *testing.T) {
	cl := newCluster(t, clusterOpts{reserve: 1 << 62})
	c := cl.client(func(cfg *Config) { cfg.RetryTimeout = 2 * time.Second })
	ctx := t.Context()
	f := mustCreate(t, c, "/hello", os.O_WRONLY)
	if _, err := f.WriteAt(ctx, []byte("hello\n"), 0); !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("first write into a full cluster: %v, want NOSPACE", err)
	}
	start := time.Now()
	if _, err := f.WriteAt(ctx, []byte("again\n"), 0); !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("second write: %v, want NOSPACE", err)
	}
	if d := time.Since(start); d > spaceAskTimeout {
		t.Logf("second write took %v", d) // informational: it should not have asked
	}
	if err := f.Close(ctx); err != nil {
		t.Fatalf("close after refused writes: %v (nothing was buffered)", err)
	}
	if a, err := c.Resolve(ctx, "/hello"); err != nil || a.Size != 0 {
		t.Fatalf("file after refused writes: size %d, %v", a.Size, err)
	}
}

// TestTruncatedUploadsAreDiscarded: blocks uploaded and then dropped
// before any commit (here by a truncation) are deleted from the
// chunkservers at once, not after the upload grace period (10 minutes
// in this cluster).
func TestTruncatedUploadsAreDiscarded(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(func(cfg *Config) {
		cfg.CommitEvery = 0
		cfg.BlockSize = 64 << 10
		cfg.WriteBuffer = 64 << 10
	})
	ctx := t.Context()
	before := cl.allBlocks()
	f := mustCreate(t, c, "/dropped", os.O_RDWR)
	writeAt(t, f, randBytes(44, 4*64<<10), 0) // four full blocks: uploaded at once
	var fresh []uint64
	eventually(t, "the four blocks uploaded", 10*time.Second, func() bool {
		fresh = fresh[:0]
		for id := range cl.allBlocks() {
			if !before[id] {
				fresh = append(fresh, id)
			}
		}
		if len(fresh) < 4 {
			return false
		}
		n := c.openInode(f.Ino()) // and the client has marked them uploaded
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.wb.pending == 4
	})
	if s := c.Stats(); s.Commits != 0 {
		t.Fatalf("%d commits before the truncation; the test needs uncommitted uploads", s.Commits)
	}
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the dropped uploads deleted", 15*time.Second, func() bool {
		all := cl.allBlocks()
		for _, id := range fresh {
			if all[id] {
				return false
			}
		}
		return true
	})
	if s := c.Stats(); s.Discarded < 4 {
		t.Fatalf("discarded %d blocks, want 4", s.Discarded)
	}
	mustClose(t, f)
	g := mustOpen(t, cl.client(nil), "/dropped", os.O_RDONLY)
	if got := readAll(t, g); len(got) != 0 {
		t.Fatalf("truncated file reads %d bytes", len(got))
	}
	mustClose(t, g)
}
