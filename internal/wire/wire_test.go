package wire

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestErrorsMatchByCode(t *testing.T) {
	err := fmt.Errorf("lookup: %w", Errorf(ErrNotFound, "no %q", "x"))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrExist) {
		t.Fatalf("errors.Is on a wrapped ENOENT: %v", err)
	}
	if CodeOf(err) != CodeNotFound || CodeOf(errors.New("plain")) != CodeIO {
		t.Fatal("CodeOf")
	}
	if !Transient(ErrUnavailable) || !Transient(ErrNotLeader) || Transient(ErrNotFound) {
		t.Fatal("Transient")
	}
	// A sentinel with a message is not a sentinel: it must not match others.
	if errors.Is(ErrNotFound, &Error{Code: CodeNotFound, Msg: "x"}) {
		t.Fatal("a message-bearing error matched as a sentinel")
	}
}

func TestBlockName(t *testing.T) {
	for _, id := range []uint64{1, 0xabc, 1<<64 - 1} {
		got, err := ParseBlockName(BlockName(id))
		if err != nil || got != id {
			t.Fatalf("round trip of %d: %d, %v", id, got, err)
		}
	}
	for _, bad := range []string{"", "0000000000000000", "000000000000000g", "000000000000000A", "../../etc/passwd", "00000000000000001"} {
		if _, err := ParseBlockName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseBlockName(%q) = %v, want EINVAL", bad, err)
		}
	}
}

// TestCallRoundTrip runs Call against a real fasthttp server: a reply, a
// coded error, a missing secret and a dead address.
func TestCallRoundTrip(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s"
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if !Authorized(ctx, secret) {
			ReplyError(ctx, ErrUnauthorized)
			return
		}
		var req LookupReq
		if err := DecodeBody(ctx, &req); err != nil {
			ReplyError(ctx, err)
			return
		}
		if req.Name == "missing" {
			ReplyError(ctx, Errorf(ErrNotFound, "lookup %q", req.Name))
			return
		}
		ReplyJSON(ctx, Attr{Ino: req.Parent + 1})
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	hc := &fasthttp.Client{}
	ctx := context.Background()
	addr := ln.Addr().String()

	var a Attr
	if err := Call(ctx, hc, addr, "/x", secret, &LookupReq{Parent: 1, Name: "f"}, &a); err != nil || a.Ino != 2 {
		t.Fatalf("call: %+v, %v", a, err)
	}
	if err := Call(ctx, hc, addr, "/x", secret, &LookupReq{Parent: 1, Name: "missing"}, &a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("coded error: %v", err)
	}
	if err := Call(ctx, hc, addr, "/x", "wrong", &LookupReq{}, &a); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	if err := Call(ctx, hc, deadAddr, "/x", "", &LookupReq{}, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("dead address: %v", err)
	}
}

func TestErrorFromResponseWithoutBody(t *testing.T) {
	cases := map[int]Code{404: CodeNotFound, 401: CodeUnauthorized, 507: CodeNoSpace, 503: CodeUnavailable, 500: CodeIO}
	for status, want := range cases {
		var r fasthttp.Response
		r.SetStatusCode(status)
		if got := CodeOf(ErrorFromResponse(&r)); got != want {
			t.Errorf("status %d: code %s, want %s", status, got, want)
		}
	}
	var r fasthttp.Response
	r.SetStatusCode(500)
	r.Header.Set(HeaderError, string(CodeChecksum))
	if !errors.Is(ErrorFromResponse(&r), ErrChecksum) {
		t.Error("X-Reelfs-Error header ignored")
	}
}

func TestErrorIsFS(t *testing.T) {
	tests := []struct {
		err    error
		target error
		want   bool
	}{
		{Errorf(ErrNotFound, "x"), fs.ErrNotExist, true},
		{ErrNotFound, fs.ErrNotExist, true},
		{Errorf(ErrExist, "x"), fs.ErrExist, true},
		{Errorf(ErrAccess, "x"), fs.ErrPermission, true},
		{Errorf(ErrPerm, "x"), fs.ErrPermission, true},
		{Errorf(ErrInvalid, "x"), fs.ErrInvalid, true},
		{Errorf(ErrNotFound, "x"), ErrNotFound, true},
		{fmt.Errorf("wrapped: %w", Errorf(ErrNotFound, "x")), fs.ErrNotExist, true},
		{Errorf(ErrNotFound, "x"), fs.ErrExist, false},
		{Errorf(ErrExist, "x"), fs.ErrNotExist, false},
		{Errorf(ErrIO, "x"), fs.ErrInvalid, false},
		{Errorf(ErrUnavailable, "x"), fs.ErrNotExist, false},
		{Errorf(ErrNoSpace, "x"), fs.ErrPermission, false},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.target); got != tt.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
		}
	}
}
