package metaserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// testServer runs a Server until the test ends.
type testServer struct {
	s    *Server
	hc   *fasthttp.Client
	stop func() error // cancels Run and returns its error; idempotent
}

func startServer(t testing.TB, mutate func(*Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Secret = testSecret
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testServer{s: s, hc: &fasthttp.Client{}, stop: stop}
}

func (ts *testServer) call(op string, req, resp any) error {
	return wire.Call(bg, ts.hc, ts.s.Addr(), wire.PathMeta+op, testSecret, req, resp)
}

func (ts *testServer) raw(t *testing.T, method, path, secret string, body []byte) (int, []byte) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + ts.s.Addr() + path)
	req.Header.SetMethod(method)
	wire.SetAuth(req, secret)
	req.SetBody(body)
	if err := ts.hc.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Dir = "/tmp/x"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.Dir = "" },
		func(c *Config) { c.Listen = "" },
		func(c *Config) { c.Listen = "nocolon" },
		func(c *Config) { c.HeartbeatTimeout = 0 },
		func(c *Config) { c.SessionTTL = -1 },
		func(c *Config) { c.GCInterval = 0 },
		func(c *Config) { c.UploadGCInterval = 0 },
		func(c *Config) { c.UploadGrace = 0 },
		func(c *Config) { c.OpLogKeep = 0 },
		func(c *Config) { c.ReadDirLimit = 0 },
	}
	for i, mut := range bad {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: New = %v", i, err)
		}
	}
}

func TestCloseWithoutRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() == "" {
		t.Fatal("no address before Run")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The database was released: it opens again.
	s, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestHTTPOps(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.GCInterval = 100 * time.Millisecond })
	cs := startFakeChunkserver(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ts.call(wire.OpHeartbeat, member("cs1", 1, cs.addr), nil))

	var d, f, s, l wire.Attr
	must(ts.call(wire.OpMkdir, wire.CreateReq{Parent: 1, Name: "d", Mode: 0o755}, &d))
	must(ts.call(wire.OpCreate, wire.CreateReq{Parent: d.Ino, Name: "f", Mode: 0o644, Open: true, Session: "s"}, &f))
	must(ts.call(wire.OpSymlink, wire.CreateReq{Parent: d.Ino, Name: "s", Target: "f"}, &s))
	must(ts.call(wire.OpLink, wire.LinkReq{Ino: f.Ino, NewParent: 1, NewName: "fl"}, &l))
	if !d.IsDir() || !f.IsRegular() || !s.IsSymlink() || l.Nlink != 2 {
		t.Fatalf("created %+v %+v %+v %+v", d, f, s, l)
	}
	var a wire.Attr
	must(ts.call(wire.OpLookup, wire.LookupReq{Parent: d.Ino, Name: "f"}, &a))
	must(ts.call(wire.OpResolve, wire.ResolveReq{Path: "/d/f"}, &a))
	must(ts.call(wire.OpGetAttr, wire.InoReq{Ino: f.Ino}, &a))
	if a.Ino != f.Ino {
		t.Fatalf("resolve/getattr = %+v", a)
	}
	var rl wire.ReadlinkReply
	must(ts.call(wire.OpReadlink, wire.InoReq{Ino: s.Ino}, &rl))
	if rl.Target != "f" {
		t.Fatalf("readlink %q", rl.Target)
	}
	var rd wire.ReadDirReply
	must(ts.call(wire.OpReadDir, wire.ReadDirReq{Ino: d.Ino}, &rd))
	if len(rd.Entries) != 2 || rd.Entries[0].Name != "f" || rd.Entries[0].Attr.Nlink != 2 {
		t.Fatalf("readdir %+v", rd)
	}
	must(ts.call(wire.OpSetXattr, wire.XattrReq{Ino: f.Ino, Name: "user.k", Value: []byte("v")}, nil))
	var xr wire.XattrReply
	must(ts.call(wire.OpGetXattr, wire.XattrReq{Ino: f.Ino, Name: "user.k"}, &xr))
	if string(xr.Value) != "v" {
		t.Fatalf("getxattr %q", xr.Value)
	}
	must(ts.call(wire.OpListXattr, wire.InoReq{Ino: f.Ino}, &xr))
	if len(xr.Names) != 1 {
		t.Fatalf("listxattr %v", xr.Names)
	}
	must(ts.call(wire.OpRemoveXattr, wire.XattrReq{Ino: f.Ino, Name: "user.k"}, nil))
	err := ts.call(wire.OpGetXattr, wire.XattrReq{Ino: f.Ino, Name: "user.k"}, &xr)
	if !errors.Is(err, wire.ErrNoAttr) {
		t.Fatalf("getxattr after remove: %v", err)
	}

	var ar wire.AllocReply
	must(ts.call(wire.OpAlloc, wire.AllocReq{Count: 2, Bytes: 200}, &ar))
	if ar.Count != 2 || ar.Group != 1 || len(ar.Members) != 1 || ar.Members[0] != cs.addr {
		t.Fatalf("alloc %+v", ar)
	}
	cs.put(ar.First, time.Now())
	must(ts.call(wire.OpCommit, wire.CommitReq{Ino: f.Ino, Size: 100, Sync: true,
		Slices: []wire.ChunkSlice{slice(0, 0, 100, ar.First)}}, &a))
	if a.Size != 100 || a.Version != 2 {
		t.Fatalf("commit reply %+v", a)
	}
	var rc wire.ReadChunkReply
	must(ts.call(wire.OpReadChunk, wire.ReadChunkReq{Ino: f.Ino}, &rc))
	if rc.Version != 2 || len(rc.Slices) != 1 || rc.Slices[0].ID != ar.First {
		t.Fatalf("readchunk %+v", rc)
	}
	must(ts.call(wire.OpSetAttr, wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetMode, Mode: 0o600, Sync: true}, &a))
	if a.Mode != wire.ModeRegular|0o600 {
		t.Fatalf("setattr %+v", a)
	}
	must(ts.call(wire.OpOpen, wire.OpenReq{Ino: f.Ino, Session: "s2"}, &a))
	must(ts.call(wire.OpSession, wire.SessionReq{Session: "s", Open: []uint64{f.Ino}}, nil))
	must(ts.call(wire.OpRename, wire.RenameReq{Parent: d.Ino, Name: "s", NewParent: 1, NewName: "s2"}, nil))
	must(ts.call(wire.OpUnlink, wire.UnlinkReq{Parent: 1, Name: "s2"}, nil))
	must(ts.call(wire.OpUnlink, wire.UnlinkReq{Parent: 1, Name: "fl"}, nil))
	must(ts.call(wire.OpUnlink, wire.UnlinkReq{Parent: d.Ino, Name: "f", Session: "s"}, nil))
	must(ts.call(wire.OpRmdir, wire.UnlinkReq{Parent: 1, Name: "d"}, nil))
	must(ts.call(wire.OpRelease, wire.OpenReq{Ino: f.Ino, Session: "s"}, nil))
	must(ts.call(wire.OpGetAttr, wire.InoReq{Ino: f.Ino}, &a)) // s2 still holds it
	must(ts.call(wire.OpRelease, wire.OpenReq{Ino: f.Ino, Session: "s2"}, nil))
	err = ts.call(wire.OpGetAttr, wire.InoReq{Ino: f.Ino}, &a)
	if !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("getattr of a released orphan: %v", err)
	}

	var st wire.StatFS
	must(ts.call(wire.OpStatFS, nil, &st))
	if st.Groups != 1 || st.Files != 1 || st.Total != 1<<40 {
		t.Fatalf("statfs %+v", st)
	}
	var gr wire.GroupsReply
	must(ts.call(wire.OpGroups, nil, &gr))
	if len(gr.Groups) != 1 || !gr.Groups[0].Members[0].Healthy {
		t.Fatalf("groups %+v", gr)
	}
	// The orphan's block reaches the chunkserver's DELETE.
	for deadline := time.Now().Add(30 * time.Second); cs.holds(ar.First); {
		if time.Now().After(deadline) {
			t.Fatal("queued block never deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHTTPEdges(t *testing.T) {
	ts := startServer(t, nil)
	ops := allOps()
	for _, op := range ops {
		st, _ := ts.raw(t, "POST", wire.PathMeta+op, "", []byte("{}"))
		if st != 401 {
			t.Errorf("%s without the secret: status %d", op, st)
		}
		st, _ = ts.raw(t, "POST", wire.PathMeta+op, "wrong", []byte("{}"))
		if st != 401 {
			t.Errorf("%s with a wrong secret: status %d", op, st)
		}
		for _, body := range []string{"", "garbage", "[1,2]", "123", `"str"`, "{", "\x00\xff"} {
			st, b := ts.raw(t, "POST", wire.PathMeta+op, testSecret, []byte(body))
			if st != 400 || !strings.Contains(string(b), `"EINVAL"`) {
				t.Errorf("%s with body %q: status %d %s", op, body, st, b)
			}
		}
		st, _ = ts.raw(t, "GET", wire.PathMeta+op, testSecret, nil)
		if st != 405 {
			t.Errorf("GET %s: status %d", op, st)
		}
	}
	if st, b := ts.raw(t, "POST", wire.PathMeta+"frobnicate", testSecret, []byte("{}")); st != 404 || !strings.Contains(string(b), "EINVAL") {
		t.Errorf("unknown op: %d %s", st, b)
	}
	if st, _ := ts.raw(t, "POST", "/elsewhere", testSecret, nil); st != 404 {
		t.Errorf("unknown path: %d", st)
	}
	if st, b := ts.raw(t, "GET", "/v1/health", "", nil); st != 200 || string(b) != "ok" {
		t.Errorf("health: %d %q", st, b)
	}
	st, b := ts.raw(t, "GET", "/metrics", "", nil)
	for _, want := range []string{"reelfs_meta_ops_total", "reelfs_meta_op_seconds", "reelfs_meta_synced_group_commits_total",
		"reelfs_meta_delete_queue_blocks", "reelfs_meta_healthy_chunkservers", "reelfs_meta_inodes"} {
		if st != 200 || !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s (status %d)", want, st)
		}
	}
	if !strings.Contains(string(b), `reelfs_meta_ops_total{code="EINVAL",op="lookup"}`) {
		t.Error("metrics do not count failed lookups by code")
	}
}

func allOps() []string {
	return []string{wire.OpLookup, wire.OpResolve, wire.OpGetAttr, wire.OpSetAttr, wire.OpMkdir,
		wire.OpCreate, wire.OpUnlink, wire.OpRmdir, wire.OpRename, wire.OpLink, wire.OpSymlink,
		wire.OpReadlink, wire.OpReadDir, wire.OpGetXattr, wire.OpSetXattr, wire.OpListXattr,
		wire.OpRemoveXattr, wire.OpStatFS, wire.OpOpen, wire.OpRelease, wire.OpSession,
		wire.OpReadChunk, wire.OpCommit, wire.OpAlloc, wire.OpGroups, wire.OpHeartbeat, wire.OpRemoveMember, wire.OpLock, wire.OpDiscard}
}

func TestOpTableIsComplete(t *testing.T) {
	ts := startServer(t, nil)
	if len(ts.s.ops) != len(allOps()) {
		t.Fatalf("%d ops served, %d in wire", len(ts.s.ops), len(allOps()))
	}
	for _, op := range allOps() {
		if ts.s.ops[op] == nil {
			t.Errorf("op %s not served", op)
		}
	}
}

func TestRestartKeepsNamespace(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, func(c *Config) { c.Dir = dir })
	var f wire.Attr
	if err := ts.call(wire.OpCreate, wire.CreateReq{Parent: 1, Name: "f", Mode: 0o644}, &f); err != nil {
		t.Fatal(err)
	}
	if err := ts.s.Close(); err == nil {
		t.Fatal("Close of a running server succeeded")
	}
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, func(c *Config) { c.Dir = dir })
	var a wire.Attr
	if err := ts.call(wire.OpLookup, wire.LookupReq{Parent: 1, Name: "f"}, &a); err != nil || a != f {
		t.Fatalf("after restart: %+v, %v; want %+v", a, err, f)
	}
}

// BenchmarkCreateHTTP measures creates through a real listener with four
// concurrent clients, the SDK's access pattern.
func BenchmarkCreateHTTP(b *testing.B) {
	ts := startServer(b, nil)
	var mu sync.Mutex
	n := 0
	b.SetParallelism(2) // 2 x GOMAXPROCS(2) = 4 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		hc := &fasthttp.Client{}
		mu.Lock()
		n++
		dir := fmt.Sprintf("d%d", n)
		mu.Unlock()
		var d wire.Attr
		if err := wire.Call(bg, hc, ts.s.Addr(), wire.PathMeta+wire.OpMkdir, testSecret,
			wire.CreateReq{Parent: 1, Name: dir, Mode: 0o755}, &d); err != nil {
			b.Error(err)
			return
		}
		i := 0
		for pb.Next() {
			i++
			var a wire.Attr
			if err := wire.Call(bg, hc, ts.s.Addr(), wire.PathMeta+wire.OpCreate, testSecret,
				wire.CreateReq{Parent: d.Ino, Name: fmt.Sprintf("f%d", i), Mode: 0o644, Exclusive: true}, &a); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestRunWithCancelledContext(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Run: %v", err)
	}
}
