package wire

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseLeaders(t *testing.T) {
	l, err := ParseLeaders(" a:1, b:2,a:1,,c:3 ")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.All(); len(got) != 3 || got[0] != "a:1" || got[2] != "c:3" {
		t.Fatalf("All = %v", got)
	}
	for _, bad := range []string{"", ",", "nohost", "a:1,b"} {
		if _, err := ParseLeaders(bad); err == nil {
			t.Errorf("ParseLeaders(%q) accepted", bad)
		}
	}
}

func TestLeadersFailed(t *testing.T) {
	l, _ := ParseLeaders("a:1,b:2,c:3")
	// Unreachable: the next address.
	if !l.Failed("a:1", Errorf(ErrUnavailable, "down")) || l.Addr() != "b:2" {
		t.Fatalf("after a failure: %s", l.Addr())
	}
	// A stale failure report of an address no longer current moves nothing.
	l.Failed("a:1", Errorf(ErrUnavailable, "down"))
	if l.Addr() != "b:2" {
		t.Fatalf("stale report moved the guess to %s", l.Addr())
	}
	// NOTLEADER naming the leader: straight there, new addresses learnt.
	if !l.Failed("b:2", &Error{Code: CodeNotLeader, Leader: "d:4"}) || l.Addr() != "d:4" {
		t.Fatalf("hint not followed: %s", l.Addr())
	}
	if len(l.All()) != 4 {
		t.Fatalf("hinted address not added: %v", l.All())
	}
	// One address: nothing else to try.
	one, _ := ParseLeaders("a:1")
	if one.Failed("a:1", Errorf(ErrUnavailable, "down")) {
		t.Fatal("a single address reported another to try")
	}
	if errors.Is(&Error{Code: CodeNotLeader, Leader: "x:1"}, ErrNotLeader) != true {
		t.Fatal("NOTLEADER with a hint does not match the sentinel")
	}
}

// TestCallLeaderFollowsHint: the first metaserver refuses naming the
// second, which answers.
func TestCallLeaderFollowsHint(t *testing.T) {
	second := serve(t, func(rc *fasthttp.RequestCtx) {
		if string(rc.Request.Header.Peek(HeaderRequestID)) != "r1" {
			ReplyError(rc, Errorf(ErrInvalid, "no request id"))
			return
		}
		ReplyJSON(rc, map[string]int{"ok": 1})
	})
	first := serve(t, func(rc *fasthttp.RequestCtx) {
		ReplyError(rc, &Error{Code: CodeNotLeader, Msg: "follower", Leader: second})
	})
	l, _ := ParseLeaders(first)
	var got map[string]int
	if err := CallLeader(context.Background(), &fasthttp.Client{}, l, "/x", "", "r1", struct{}{}, &got); err != nil || got["ok"] != 1 {
		t.Fatalf("CallLeader: %v, %v", got, err)
	}
	if l.Addr() != second {
		t.Fatalf("guess stayed at %s", l.Addr())
	}
}

// serve runs handler on a loopback port until the test ends.
func serve(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// TestCallLeaderSkipsStaleHint: the first address is dead, the second a
// follower whose hint still names the dead one, the third leads: the call
// must reach the third, not bounce between the first two.
func TestCallLeaderSkipsStaleHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	leader := serve(t, func(rc *fasthttp.RequestCtx) { ReplyJSON(rc, map[string]int{"ok": 1}) })
	follower := serve(t, func(rc *fasthttp.RequestCtx) {
		ReplyError(rc, &Error{Code: CodeNotLeader, Leader: dead})
	})
	l, _ := ParseLeaders(dead + "," + follower + "," + leader)
	var got map[string]int
	if err := CallLeader(context.Background(), &fasthttp.Client{}, l, "/x", "", "", struct{}{}, &got); err != nil || got["ok"] != 1 {
		t.Fatalf("CallLeader: %v, %v", got, err)
	}
}

// TestCallLeaderMovesOffSilent: a metaserver that accepts but never
// answers (stopped) costs the caller its deadline once; the next call
// asks another.
func TestCallLeaderMovesOffSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // accepts (the kernel does), never answers
	leader := serve(t, func(rc *fasthttp.RequestCtx) { ReplyJSON(rc, map[string]int{"ok": 1}) })
	l, _ := ParseLeaders(ln.Addr().String() + "," + leader)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The call fails when the deadline ends the attempt, or reaches the
	// leader when the client's own timeout fires a moment before the
	// deadline; either way the guess must have left the silent one.
	CallLeader(ctx, &fasthttp.Client{}, l, "/x", "", "", struct{}{}, nil)
	if l.Addr() != leader {
		t.Fatalf("guess stayed at the silent %s", l.Addr())
	}
}
