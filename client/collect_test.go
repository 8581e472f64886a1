package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
	"github.com/reelfs/reelfs/metaserver"
)

// A writer slower than the metaserver's upload grace keeps its uploads:
// its keep-alives report them, so the collector of uncommitted uploads
// leaves them alone, and the late commit succeeds and reads back. A block
// nobody reports is collected, and committing it afterwards fails.
func TestSlowWriterOutlivesUploadGrace(t *testing.T) {
	const ttl = time.Second
	cl := newCluster(t, clusterOpts{meta: func(c *metaserver.Config) {
		c.UploadGrace = 10 * time.Millisecond
		c.UploadGCInterval = 20 * time.Millisecond
		c.SessionTTL = ttl
	}})
	start := time.Now()
	ctx := context.Background()
	tweak := func(c *Config) {
		c.BlockSize = 64 << 10
		c.WriteBuffer = 256 << 10
		c.SessionEvery = 100 * time.Millisecond
	}
	w := cl.client(tweak)
	f, err := w.Create(ctx, wire.RootIno, "slow", 0o644, 0, 0, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 5*(64<<10)+1000)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	half := 3 * (64 << 10)
	if _, err := f.WriteAt(ctx, data[:half], 0); err != nil {
		t.Fatal(err)
	}
	// Three full blocks go out in the background; wait until they are on
	// the chunkservers and awaiting commit.
	eventually(t, "uploads of the first half", 10*time.Second, func() bool {
		f.n.mu.Lock()
		defer f.n.mu.Unlock()
		return f.n.wb.pending == 3
	})
	f.n.mu.Lock()
	mine := f.n.wb.uploadedIDs(nil)
	f.n.mu.Unlock()

	// A block uploaded by nobody who reports it: the collector's prey.
	other := cl.client(tweak)
	lost, group, err := other.upload(ctx, data[:1000])
	if err != nil {
		t.Fatal(err)
	}
	other.unholdPut(lost) // as if its writer had given it up

	// Stay slow: well past the grace, the metaserver's wait after its
	// start and its session TTL, while keep-alives run.
	eventually(t, "the unreported block to be collected", 20*time.Second, func() bool {
		return !cl.allBlocks()[lost]
	})
	for time.Since(start) < 2*ttl+500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	have := cl.allBlocks()
	for _, id := range mine {
		if !have[id] {
			t.Fatalf("block %d of the live writer was collected", id)
		}
	}
	if _, err := f.WriteAt(ctx, data[half:], int64(half)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatalf("close of the slow writer: %v", err)
	}
	rf := mustOpen(t, cl.client(nil), "/slow", os.O_RDONLY)
	defer rf.Close(ctx)
	if got := readAll(t, rf); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}

	// The collected block can never be committed.
	g, err := other.Create(ctx, wire.RootIno, "late", 0o644, 0, 0, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	var attr wire.Attr
	err = other.call(ctx, wire.OpCommit, &wire.CommitReq{Ino: g.Ino(), Size: 1000, Slices: []wire.ChunkSlice{
		{Index: 0, Slice: wire.Slice{Pos: 0, Len: 1000, ID: lost, Group: group, Size: 1000}},
	}}, &attr)
	if !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("commit of a collected block: %v, want EINVAL", err)
	}
	g.Close(ctx)
}

func TestIDRanges(t *testing.T) {
	for _, tc := range []struct {
		ids  []uint64
		want []wire.IDRange
	}{
		{nil, nil},
		{[]uint64{7}, []wire.IDRange{{7, 7}}},
		{[]uint64{9, 7, 8, 8, 12, 11, 20}, []wire.IDRange{{7, 9}, {11, 12}, {20, 20}}},
	} {
		got := idRanges(append([]uint64(nil), tc.ids...))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("idRanges(%v) = %v, want %v", tc.ids, got, tc.want)
		}
	}
}
