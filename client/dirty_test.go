package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/reelfs/reelfs/metaserver"
)

// Many concurrent writers of one client never hold more than DirtyBytes
// not uploaded, all their data arrives, and the gauge ends at zero.
func TestDirtyBytesCapAcrossWriters(t *testing.T) {
	cl := newCluster(t, clusterOpts{meta: patientTracker})
	const (
		block   = 64 << 10
		limit   = 8 * block
		writers = 24
		size    = 40*block + 1234
		piece   = 20 << 10 // not a divisor of the block: slices stay partial
	)
	c := cl.client(func(c *Config) {
		c.BlockSize = block
		c.WriteBuffer = 4 * block // per inode: 24 x 4 blocks would be far above the cap
		c.DirtyBytes = limit
		c.Uploads = 4
	})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			f, err := c.CreatePath(ctx, fmt.Sprintf("/w%d", w), 0o644, os.O_WRONLY)
			if err != nil {
				errs <- err
				return
			}
			data := randBytes(int64(w), size)
			for off := 0; off < size; off += piece {
				if _, err := f.WriteAt(ctx, data[off:min(off+piece, size)], int64(off)); err != nil {
					errs <- err
					return
				}
			}
			errs <- f.Close(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	t.Logf("dirty peak %d bytes (cap %d), %d waits", st.DirtyPeak, int64(limit), st.DirtyWaits)
	if st.DirtyPeak > limit {
		t.Fatalf("dirty bytes peaked at %d, above the cap of %d", st.DirtyPeak, limit)
	}
	if st.DirtyWaits == 0 {
		t.Fatal("no writer ever waited: the test did not reach the cap")
	}
	if st.DirtyBytes != 0 {
		t.Fatalf("%d dirty bytes counted after every file closed", st.DirtyBytes)
	}
	r := cl.client(nil)
	for w := 0; w < writers; w++ {
		f := mustOpen(t, r, fmt.Sprintf("/w%d", w), os.O_RDONLY)
		if got := readAll(t, f); !bytes.Equal(got, randBytes(int64(w), size)) {
			t.Fatalf("file %d differs", w)
		}
		mustClose(t, f)
	}
}

// A writer waiting for room gives up when its context ends.
func TestDirtyBytesWaitHonoursContext(t *testing.T) {
	cl := newCluster(t, clusterOpts{meta: patientTracker})
	const block = 64 << 10
	c := cl.client(func(c *Config) {
		c.BlockSize = block
		c.WriteBuffer = 4 * block
		c.DirtyBytes = 2 * block
		c.RetryTimeout = time.Minute
	})
	for _, tc := range cl.chunks {
		tc.stop() // uploads now retry and hold their memory
	}
	ctx := context.Background()
	a := mustCreate(t, c, "/a", os.O_WRONLY)
	writeAt(t, a, randBytes(1, 2*block), 0) // the cap, uploading for good
	b := mustCreate(t, c, "/b", os.O_WRONLY)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.WriteAt(wctx, randBytes(2, 1000), 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write past the cap: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("write returned after %v", d)
	}
}

// patientTracker keeps chunkservers healthy at the metaserver for a
// minute without a heartbeat. The tests above are about the client's
// memory cap, not placement: with the test cluster's 2 s timeout a
// loaded machine (or the stopped chunkservers of the second test,
// expiring one by one) left a group below min-copies, and the writes
// failed with NOSPACE instead of showing what the cap does.
func patientTracker(c *metaserver.Config) { c.HeartbeatTimeout = time.Minute }
