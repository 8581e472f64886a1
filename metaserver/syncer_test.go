package metaserver

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// gatedFlush wraps a flush so a test can hold the first flush until it has
// lined up all the waiters it wants.
type gatedFlush struct {
	inner   func() error
	entered chan int      // receives the flush number as each flush starts
	gate    chan struct{} // each flush waits for one token
	n       atomic.Int32
}

func (g *gatedFlush) flush() error {
	g.entered <- int(g.n.Add(1))
	<-g.gate
	return g.inner()
}

// waitFor spins (yielding) until cond holds.
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

func pending(s *syncer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		return 0
	}
	return s.next.waiters
}

func TestGroupCommitSharesFlushes(t *testing.T) {
	c, _ := newTestCore(t)
	const n = 32
	f := mkfile(t, c, 1, "f")
	id := lease(t, c, n) // a lease is synced: take it before the gate
	g := &gatedFlush{inner: c.syncMarker, entered: make(chan int, 100), gate: make(chan struct{}, 100)}
	c.syncer.close()
	c.syncer = newSyncer(g.flush)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.commit(bg, &wire.CommitReq{Ino: f.Ino, Sync: true, Size: uint64(i+1) * 100,
				Slices: []wire.ChunkSlice{slice(0, uint32(i)*100, 100, id+uint64(i))}})
			errs <- err
		}()
	}
	// The first flush starts with whoever came first; everyone else lines
	// up behind it in the next round.
	<-g.entered
	waitFor(func() bool {
		c.syncer.mu.Lock()
		defer c.syncer.mu.Unlock()
		return c.syncer.joined == n
	})
	g.gate <- struct{}{}
	g.gate <- struct{}{}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := c.syncer.flushes.Load(); got > 2 {
		t.Fatalf("%d concurrent synced commits took %d flushes, want <= 2", n, got)
	}
	if a := getattr(t, c, f.Ino); a.Version != 1+n {
		t.Fatalf("version %d after %d commits", a.Version, n)
	}
}

func TestSyncWaitsForALaterFlush(t *testing.T) {
	g := &gatedFlush{inner: func() error { return nil }, entered: make(chan int, 10), gate: make(chan struct{}, 10)}
	s := newSyncer(g.flush)
	defer s.close()
	first := make(chan error, 1)
	go func() { first <- s.wait(bg) }()
	<-g.entered // flush 1 runs for the first waiter
	second := make(chan error, 1)
	go func() { second <- s.wait(bg) }()
	waitFor(func() bool { return pending(s) == 1 })
	g.gate <- struct{}{} // flush 1 finishes: only the first waiter may go
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := <-g.entered; n != 2 {
		t.Fatalf("flush %d started, want 2", n)
	}
	select {
	case err := <-second:
		t.Fatalf("second waiter released (%v) by a flush that started before it joined", err)
	default:
	}
	g.gate <- struct{}{}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func TestSyncErrorsAndClose(t *testing.T) {
	boom := errors.New("boom")
	s := newSyncer(func() error { return boom })
	if err := s.wait(bg); !errors.Is(err, boom) {
		t.Fatalf("wait = %v, want the flush error", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	gate := make(chan struct{})
	s2 := newSyncer(func() error { <-gate; return nil })
	if err := s2.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with a cancelled context = %v", err)
	}
	close(gate)
	s.close()
	s2.close()
	if err := s.wait(bg); !errors.Is(err, ErrClosed) {
		t.Fatalf("wait after close = %v", err)
	}
}
