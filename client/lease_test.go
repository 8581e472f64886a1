package client

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// TestLeaseFailureIsShared: callers that were already waiting for the
// lease while its alloc call failed get that failure without calling the
// metaserver again. Otherwise a dead metaserver costs a writer one full
// retry timeout per queued block.
func TestLeaseFailureIsShared(t *testing.T) {
	var allocs atomic.Int64
	first := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != wire.PathMeta+wire.OpAlloc {
			wire.ReplyJSON(ctx, struct{}{}) // session keep-alives
			return
		}
		allocs.Add(1)
		once.Do(func() { close(first); <-release })
		// NOSPACE is not retried, so the first caller makes exactly one
		// call and every further call is a waiter's.
		wire.ReplyError(ctx, wire.Errorf(wire.ErrNoSpace, "all groups are full"))
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })

	cfg := DefaultConfig()
	cfg.Meta = ln.Addr().String()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()

	const waiters = 6
	errs := make(chan error, waiters+1)
	go func() { _, err := c.nextID(ctx, 1); errs <- err }()
	<-first // the first caller holds the lease and its alloc call is in flight
	for i := 0; i < waiters; i++ {
		go func() { _, err := c.nextID(ctx, 1); errs <- err }()
	}
	// Wait until every other caller is parked on the lease mutex, so each
	// asked before the failure below.
	deadline := time.Now().Add(30 * time.Second)
	for blockedInNextID() < waiters {
		if time.Now().After(deadline) {
			t.Fatalf("only %d callers reached the lease", blockedInNextID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)

	for i := 0; i < waiters+1; i++ {
		if err := <-errs; !errors.Is(err, wire.ErrNoSpace) {
			t.Fatalf("caller %d: %v, want NOSPACE", i, err)
		}
	}
	if n := allocs.Load(); n != 1 {
		t.Fatalf("%d alloc calls for one failed lease, want 1: the waiting callers asked again", n)
	}
	// A caller that arrives after the failure asks afresh.
	if _, err := c.nextID(ctx, 1); !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("a later caller: %v", err)
	}
	if n := allocs.Load(); n != 2 {
		t.Fatalf("a caller arriving after the failure made %d calls in all, want 2", n)
	}
}

// blockedInNextID counts goroutines waiting for the lease mutex in nextID.
func blockedInNextID() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("sync.(*Mutex).Lock")) && bytes.Contains(g, []byte("client.(*Client).nextID")) {
			n++
		}
	}
	return n
}
