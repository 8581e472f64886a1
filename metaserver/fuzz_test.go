package metaserver

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// serveDirect runs one request through the handler without a listener.
func serveDirect(s *Server, op string, body []byte) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(wire.PathMeta + op)
	wire.SetAuth(&req, testSecret)
	req.SetBody(body)
	rc := &fasthttp.RequestCtx{}
	rc.Init(&req, nil, nil)
	s.handle(rc)
	return rc
}

// FuzzDecode feeds each input as the body of every op. Whatever the bytes,
// the server must answer without panicking and without an internal error
// (5xx other than the UNAVAILABLE/NOSPACE of placement), and the root must
// stay a healthy directory.
func FuzzDecode(f *testing.F) {
	seeds := []any{
		wire.InoReq{Ino: 1},
		wire.LookupReq{Parent: 1, Name: "a"},
		wire.ResolveReq{Path: "/a/b"},
		wire.SetAttrReq{Ino: 2, Valid: wire.SetSize | wire.SetMode, Size: 1 << 30, Mode: 0o7777},
		wire.CreateReq{Parent: 1, Name: "a", Mode: wire.ModeDir | 0o755},
		wire.CreateReq{Parent: 1, Name: "f", Mode: 0o644, Open: true, Session: "s"},
		wire.CreateReq{Parent: 1, Name: "l", Mode: wire.ModeSymlink, Target: "x"},
		wire.UnlinkReq{Parent: 1, Name: "a", Session: "s"},
		wire.RenameReq{Parent: 1, Name: "a", NewParent: 2, NewName: "b", Flags: wire.RenameExchange},
		wire.LinkReq{Ino: 3, NewParent: 1, NewName: "h"},
		wire.ReadDirReq{Ino: 1, After: "a", Limit: 3},
		wire.XattrReq{Ino: 1, Name: "user.x", Value: []byte("v"), Flags: wire.XattrCreate},
		wire.OpenReq{Ino: 2, Session: "s"},
		wire.SessionReq{Session: "s", Open: []uint64{1, 2, 3}},
		wire.ReadChunkReq{Ino: 3, Index: 1},
		wire.CommitReq{Ino: 3, Size: 10, Slices: []wire.ChunkSlice{slice(0, 0, 10, 1)}},
		wire.AllocReq{Count: 3, Bytes: 1 << 20},
		*member("m", 1, "127.0.0.1:1"),
	}
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte("null"))
	f.Add([]byte(`{"i":18446744073709551615,"c":4294967295}`))
	f.Add([]byte("\xff{"))

	cfg := DefaultConfig()
	cfg.Dir = f.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Secret = testSecret
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	// A healthy group so alloc and commit get past placement.
	if err := beat(s.core, member("cs1", 1, "127.0.0.1:1")); err != nil {
		f.Fatal(err)
	}

	ops := allOps()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range ops {
			rc := serveDirect(s, op, body)
			st := rc.Response.StatusCode()
			code := wire.Code(rc.Response.Header.Peek(wire.HeaderError))
			placement := op == wire.OpAlloc && (code == wire.CodeUnavailable || code == wire.CodeNoSpace)
			if st >= 500 && !placement {
				t.Fatalf("%s with body %q: status %d %s", op, body, st, rc.Response.Body())
			}
		}
		rc := serveDirect(s, wire.OpGetAttr, []byte(`{"i":1}`))
		var root wire.Attr
		if rc.Response.StatusCode() != 200 || json.Unmarshal(rc.Response.Body(), &root) != nil ||
			!root.IsDir() || root.Ino != wire.RootIno || root.Nlink < 2 {
			t.Fatalf("root after %q: %d %s", body, rc.Response.StatusCode(), rc.Response.Body())
		}
	})
}
