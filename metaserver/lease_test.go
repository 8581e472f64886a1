package metaserver

import (
	"errors"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// A block-id lease is answered only after a synced write that covers its
// high-water mark: a flush that fails fails the alloc, and the flush that
// serves it already sees the new mark in the database.
func TestAllocWaitsForSyncedHighWater(t *testing.T) {
	c, _ := newTestCore(t)
	if err := beat(c, member("cs1", 1, "127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	var seen []uint64 // high-water marks in the database at each flush
	diskErr := errors.New("injected flush failure")
	failing := false
	c.syncer.close()
	c.syncer = newSyncer(func() error {
		v, err := c.db.Get(keyMeta, nil)
		if err != nil {
			return err
		}
		ctr, err := decodeCounters(v)
		if err != nil {
			return err
		}
		seen = append(seen, ctr.nextBlock)
		if failing {
			return diskErr
		}
		return c.syncMarker()
	})

	r, err := c.alloc(bg, &wire.AllocReq{Count: 100, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] < r.First+100 {
		t.Fatalf("flushes saw high-water marks %v, want one at or past %d", seen, r.First+100)
	}

	failing = true
	_, err = c.alloc(bg, &wire.AllocReq{Count: 100, Bytes: 1 << 20})
	wantCode(t, err, wire.CodeIO)
	// The failed lease's ids are skipped, never handed out again.
	failing = false
	r2, err := c.alloc(bg, &wire.AllocReq{Count: 1, Bytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r2.First < r.First+200 {
		t.Fatalf("lease after a failed sync starts at %d, want >= %d", r2.First, r.First+200)
	}
}
