package chunkserver

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// fakeTracker is a fasthttp server that records heartbeats. While fail is
// set it answers 503.
type fakeTracker struct {
	addr  string
	beats chan wire.Heartbeat
	fail  atomic.Bool
	fails atomic.Int64 // heartbeats refused while fail was set
	bad   chan string  // requests that were not well-formed heartbeats
}

func startTracker(t *testing.T, secret string) *fakeTracker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeTracker{addr: ln.Addr().String(), beats: make(chan wire.Heartbeat, 1000), bad: make(chan string, 100)}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != wire.PathMeta+wire.OpHeartbeat || !ctx.IsPost() || !wire.Authorized(ctx, secret) {
			ft.bad <- string(ctx.Method()) + " " + string(ctx.Path())
			wire.ReplyError(ctx, wire.ErrUnauthorized)
			return
		}
		if ft.fail.Load() {
			ft.fails.Add(1)
			wire.ReplyError(ctx, wire.Errorf(wire.ErrUnavailable, "tracker down"))
			return
		}
		var hb wire.Heartbeat
		if err := wire.DecodeBody(ctx, &hb); err != nil {
			ft.bad <- err.Error()
			wire.ReplyError(ctx, err)
			return
		}
		ft.beats <- hb
		// A group of one: the member is its whole in-sync set.
		wire.ReplyJSON(ctx, wire.HeartbeatReply{Group: wire.Group{ID: hb.Group, Members: []wire.Member{hb},
			ISR: []string{hb.ID}, ISRVersion: 1, MinCopies: 1}})
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ft
}

// next returns the next heartbeat; the test's timeout bounds the wait.
func (ft *fakeTracker) next(t *testing.T) wire.Heartbeat {
	t.Helper()
	select {
	case hb := <-ft.beats:
		return hb
	case b := <-ft.bad:
		t.Fatalf("tracker got a bad request: %s", b)
	}
	return wire.Heartbeat{}
}

func TestHeartbeat(t *testing.T) {
	ft := startTracker(t, "hb-secret")
	cfg := testConfig(t)
	cfg.Meta = ft.addr
	cfg.Secret = "hb-secret"
	cfg.Group = 7
	cfg.HeartbeatEvery = 20 * time.Millisecond
	ts := startServer(t, cfg)

	hb := ft.next(t)
	if hb.ID != ts.ID() || hb.Addr != ts.Addr() || hb.Group != 7 || hb.Capacity == 0 || hb.Free > hb.Capacity ||
		hb.Blocks != 0 || hb.Seq != 0 || hb.LastSeen == 0 || !hb.Healthy {
		t.Fatalf("first heartbeat: %+v", hb)
	}
	wantStatus(t, ts.do(t, "PUT", blockURI(1), make([]byte, 1000)), 201, "")
	for hb.Blocks != 1 {
		hb = ft.next(t)
	}
	if hb.Used != 1000 || hb.Seq != 1 {
		t.Fatalf("heartbeat after a put: %+v", hb)
	}
	// A tracker outage is survived: beats resume when it is back.
	ft.fail.Store(true)
	waitFor(t, func() bool { return ft.fails.Load() >= 3 })
	for len(ft.beats) > 0 {
		<-ft.beats
	}
	ft.fail.Store(false)
	last := hb.LastSeen
	if hb = ft.next(t); hb.LastSeen <= last || hb.Blocks != 1 {
		t.Fatalf("heartbeat after the outage: %+v", hb)
	}
}

func TestHeartbeatImmediate(t *testing.T) {
	ft := startTracker(t, "")
	cfg := testConfig(t)
	cfg.Meta = ft.addr
	cfg.HeartbeatEvery = time.Hour // only the first, immediate beat can arrive
	ts := startServer(t, cfg)
	if hb := ft.next(t); hb.ID != ts.ID() {
		t.Fatalf("heartbeat from %q, want %q", hb.ID, ts.ID())
	}
	// Free excludes the reserve.
	cfg2 := testConfig(t)
	cfg2.Reserve = 1 << 62
	s2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if m := s2.member(); m.Free != 0 || m.Capacity == 0 {
		t.Fatalf("member with a huge reserve: %+v", m)
	}
}
