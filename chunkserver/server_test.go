package chunkserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// testServer is a running chunkserver on 127.0.0.1:0 and a client for it.
type testServer struct {
	*Server
	dir    string
	secret string
	hc     *fasthttp.Client
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Reserve = 0
	return cfg
}

// startServer runs a server until the test ends and checks Run's result.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	ts := &testServer{Server: s, dir: cfg.Dir, secret: cfg.Secret, hc: &fasthttp.Client{}}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ts.hc.CloseIdleConnections()
	})
	return ts
}

// do sends one request; hdr holds header name/value pairs.
func (ts *testServer) do(t *testing.T, method, uri string, body []byte, hdr ...string) *fasthttp.Response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + ts.Addr() + uri)
	wire.SetAuth(req, ts.secret)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil {
		req.SetBody(body)
	}
	resp := &fasthttp.Response{}
	if method == fasthttp.MethodHead {
		resp.SkipBody = true
	}
	if err := ts.hc.DoTimeout(req, resp, time.Minute); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	return resp
}

// wantStatus checks the status and, for errors, the wire code.
func wantStatus(t *testing.T, resp *fasthttp.Response, status int, code wire.Code) {
	t.Helper()
	if resp.StatusCode() != status {
		t.Fatalf("status %d, want %d; body %q", resp.StatusCode(), status, truncate(string(resp.Body()), 300))
	}
	if code == "" {
		return
	}
	if got := string(resp.Header.Peek(wire.HeaderError)); got != string(code) {
		t.Fatalf("%s %q, want %s", wire.HeaderError, got, code)
	}
	if err := wire.ErrorFromResponse(resp); wire.CodeOf(err) != code {
		t.Fatalf("body error %v, want code %s", err, code)
	}
}

func blockURI(id uint64) string { return wire.PathBlock + wire.BlockName(id) }

func TestHTTPBlockLifecycle(t *testing.T) {
	ts := startServer(t, testConfig(t))
	r := rand.New(rand.NewPCG(21, 22))
	data := randBytes(r, wire.MaxBlockSize)
	const id = 0x0123456789abcdef

	wantStatus(t, ts.do(t, "PUT", blockURI(id), data), 201, "")
	wantStatus(t, ts.do(t, "PUT", blockURI(id), data), 200, "")
	wantStatus(t, ts.do(t, "PUT", blockURI(id), data[:1000]), 409, wire.CodeExist)

	resp := ts.do(t, "GET", blockURI(id), nil)
	wantStatus(t, resp, 200, "")
	if !bytes.Equal(resp.Body(), data) {
		t.Fatal("GET returned other bytes")
	}
	if string(resp.Header.Peek("Accept-Ranges")) != "bytes" {
		t.Fatal("no Accept-Ranges")
	}
	resp = ts.do(t, "HEAD", blockURI(id), nil)
	wantStatus(t, resp, 200, "")
	if resp.Header.ContentLength() != len(data) {
		t.Fatalf("HEAD Content-Length %d, want %d", resp.Header.ContentLength(), len(data))
	}

	size := len(data)
	ranges := []struct {
		h          string
		first, end int // end exclusive
	}{
		{"bytes=0-9", 0, 10},
		{"bytes=65530-65545", 65530, 65546},
		{"bytes=100-", 100, size},
		{"bytes=-7", size - 7, size},
		{"bytes=4000000-99999999", 4000000, size},
		{"bytes=0-", 0, size},
	}
	for _, rg := range ranges {
		resp := ts.do(t, "GET", blockURI(id), nil, "Range", rg.h)
		wantStatus(t, resp, 206, "")
		if !bytes.Equal(resp.Body(), data[rg.first:rg.end]) {
			t.Fatalf("%s: wrong bytes", rg.h)
		}
		want := fmt.Sprintf("bytes %d-%d/%d", rg.first, rg.end-1, size)
		if got := string(resp.Header.Peek("Content-Range")); got != want {
			t.Fatalf("%s: Content-Range %q, want %q", rg.h, got, want)
		}
	}
	for _, h := range []string{fmt.Sprintf("bytes=%d-", size), "bytes=-0", "bytes=99999999999-"} {
		resp := ts.do(t, "GET", blockURI(id), nil, "Range", h)
		wantStatus(t, resp, 416, wire.CodeRange)
		if got := string(resp.Header.Peek("Content-Range")); got != fmt.Sprintf("bytes */%d", size) {
			t.Fatalf("%s: Content-Range %q", h, got)
		}
	}
	for _, h := range []string{"bytes=0-1,5-6", "bytes=5-1", "lines=1-2", "bytes=x-y", "garbage"} {
		wantStatus(t, ts.do(t, "GET", blockURI(id), nil, "Range", h), 400, wire.CodeInvalid)
	}

	wantStatus(t, ts.do(t, "DELETE", blockURI(id), nil), 204, "")
	wantStatus(t, ts.do(t, "DELETE", blockURI(id), nil), 404, wire.CodeNotFound)
	wantStatus(t, ts.do(t, "GET", blockURI(id), nil), 404, wire.CodeNotFound)
	resp = ts.do(t, "HEAD", blockURI(id), nil)
	if resp.StatusCode() != 404 {
		t.Fatalf("HEAD of a deleted block: %d", resp.StatusCode())
	}
}

func TestHTTPPutChecks(t *testing.T) {
	ts := startServer(t, testConfig(t))
	data := []byte("a block with a checksum")
	sum := fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))

	wantStatus(t, ts.do(t, "PUT", blockURI(1), data, wire.HeaderCRC, sum), 201, "")
	wantStatus(t, ts.do(t, "PUT", blockURI(2), data, wire.HeaderCRC, strings.ToUpper(sum)), 201, "")
	for _, bad := range []string{"00000000", "deadbeef"} {
		wantStatus(t, ts.do(t, "PUT", blockURI(3), data, wire.HeaderCRC, bad), 400, wire.CodeInvalid)
	}
	for _, bad := range []string{"xyz", "123", "0x1234567", "123456789", " "} {
		wantStatus(t, ts.do(t, "PUT", blockURI(3), data, wire.HeaderCRC, bad), 400, wire.CodeInvalid)
	}
	wantStatus(t, ts.do(t, "HEAD", blockURI(3), nil), 404, "")

	// Just over a block: the handler refuses it. Far over: fasthttp does.
	wantStatus(t, ts.do(t, "PUT", blockURI(4), make([]byte, wire.MaxBlockSize+1)), 413, wire.CodeInvalid)
	// Announce 8 MiB over a raw connection: fasthttp refuses it from the
	// header alone, before any body byte (sending the body would race the
	// server closing the connection).
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", blockURI(5), 2*wire.MaxBlockSize)
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(conn)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, &resp, 413, wire.CodeInvalid)
	for _, id := range []uint64{4, 5} {
		wantStatus(t, ts.do(t, "HEAD", blockURI(id), nil), 404, "")
	}
	// An empty block is a valid block.
	wantStatus(t, ts.do(t, "PUT", blockURI(6), []byte{}), 201, "")
	wantStatus(t, ts.do(t, "GET", blockURI(6), nil), 200, "")
	wantStatus(t, ts.do(t, "GET", blockURI(6), nil, "Range", "bytes=0-"), 416, wire.CodeRange)
}

func TestHTTPGarbage(t *testing.T) {
	ts := startServer(t, testConfig(t))
	wantStatus(t, ts.do(t, "PUT", blockURI(9), []byte("keep me")), 201, "")
	cases := []struct {
		method, uri string
		status      int
	}{
		{"GET", "/v1/block/xyz", 400},
		{"GET", "/v1/block/", 400},
		{"GET", "/v1/block/0000000000000000", 400},
		{"GET", "/v1/block/0000000000000009/extra", 400},
		{"GET", "/v1/block/000000000000000G", 400},
		{"GET", "/v1/block/00000000000000AB", 400},
		{"GET", "/v1/block/00000000000000001", 400},
		{"PUT", "/v1/block/-1", 400},
		{"POST", "/v1/block/0000000000000009", 405},
		{"PATCH", "/v1/block/0000000000000009", 405},
		{"PUT", "/v1/blocks", 405},
		{"POST", "/v1/binlog", 405},
		{"DELETE", "/v1/status", 405},
		{"POST", "/metrics", 405},
		{"GET", "/v1/nothing", 404},
		{"GET", "/", 404},
		{"GET", "/v1/blocks?limit=-1", 400},
		{"GET", "/v1/blocks?limit=abc", 400},
		{"GET", "/v1/blocks?limit=99999999999999999999", 400},
		{"GET", "/v1/blocks?after=zz", 400},
		{"GET", "/v1/blocks?after=00000000000000ff", 400},
		{"GET", "/v1/blocks?after=-5", 400},
		{"GET", "/v1/blocks?after=1&after=2", 400},
		{"GET", "/v1/blocks?before=yesterday", 400},
		{"GET", "/v1/blocks?before=-1", 400},
		{"GET", "/v1/blocks?colour=blue", 400},
		{"GET", "/v1/binlog?from=-1", 400},
		{"GET", "/v1/binlog?from=x", 400},
		{"GET", "/v1/binlog?wait=forever", 400},
		{"GET", "/v1/binlog?wait=10", 400},
		{"GET", "/v1/binlog?wait=-1s", 400},
		{"GET", "/v1/binlog?limit=1e9", 400},
		{"GET", "/v1/binlog?since=1", 400},
	}
	for _, c := range cases {
		resp := ts.do(t, c.method, c.uri, nil)
		if resp.StatusCode() != c.status {
			t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.uri, resp.StatusCode(), c.status, resp.Body())
			continue
		}
		if err := wire.ErrorFromResponse(resp); wire.CodeOf(err) == wire.CodeIO {
			t.Errorf("%s %s: no wire code in %q", c.method, c.uri, resp.Body())
		}
		if c.status == 405 && len(resp.Header.Peek("Allow")) == 0 {
			t.Errorf("%s %s: 405 without Allow", c.method, c.uri)
		}
	}
	resp := ts.do(t, "GET", blockURI(9), nil)
	wantStatus(t, resp, 200, "")
	if string(resp.Body()) != "keep me" {
		t.Fatalf("stored block changed to %q", resp.Body())
	}
}

func TestHTTPListAndStatus(t *testing.T) {
	ts := startServer(t, testConfig(t))
	ids := []uint64{3, 0x100, 0x10000, 0xfffffffffffffff0}
	for _, id := range ids {
		wantStatus(t, ts.do(t, "PUT", blockURI(id), []byte(wire.BlockName(id))), 201, "")
	}
	list := func(uri string) wire.BlockList {
		t.Helper()
		resp := ts.do(t, "GET", uri, nil)
		wantStatus(t, resp, 200, "")
		var l wire.BlockList
		if err := json.Unmarshal(resp.Body(), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := list("/v1/blocks")
	if len(l.Blocks) != 4 || l.More || l.Blocks[3].ID != ids[3] || l.Blocks[0].Size != 16 {
		t.Fatalf("list: %+v", l)
	}
	l = list("/v1/blocks?limit=2")
	if len(l.Blocks) != 2 || !l.More {
		t.Fatalf("limit 2: %+v", l)
	}
	l = list("/v1/blocks?limit=2&after=256")
	if len(l.Blocks) != 2 || l.More || l.Blocks[0].ID != 0x10000 {
		t.Fatalf("after 256: %+v", l)
	}
	l = list("/v1/blocks?after=0000000000000100")
	if len(l.Blocks) != 3 || l.Blocks[0].ID != 0x100 {
		t.Fatalf("after a zero-padded decimal id: %+v", l)
	}
	l = list("/v1/blocks?after=0&limit=0")
	if len(l.Blocks) != 4 {
		t.Fatalf("after zero: %+v", l)
	}
	l = list(fmt.Sprintf("/v1/blocks?before=%d", time.Now().Add(-time.Hour).UnixNano()))
	if len(l.Blocks) != 0 || l.More {
		t.Fatalf("before an hour ago: %+v", l)
	}
	l = list(fmt.Sprintf("/v1/blocks?before=%d", time.Now().Add(time.Hour).UnixNano()))
	if len(l.Blocks) != 4 {
		t.Fatalf("before in an hour: %+v", l)
	}

	resp := ts.do(t, "GET", wire.PathStatus, nil)
	wantStatus(t, resp, 200, "")
	var m wire.Member
	if err := json.Unmarshal(resp.Body(), &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != ts.ID() || m.Addr != ts.Addr() || m.Group != 1 || m.Blocks != 4 || m.Used != 64 ||
		m.Seq != 4 || m.Capacity == 0 || m.Free > m.Capacity || !m.Healthy || m.LastSeen == 0 {
		t.Fatalf("status: %+v", m)
	}
}

func TestHTTPBinlog(t *testing.T) {
	ts := startServer(t, testConfig(t))
	read := func(uri string) wire.BinlogReply {
		t.Helper()
		resp := ts.do(t, "GET", uri, nil)
		wantStatus(t, resp, 200, "")
		var r wire.BinlogReply
		if err := json.Unmarshal(resp.Body(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := read("/v1/binlog")
	if len(r.Entries) != 0 || r.First != 1 || r.Last != 0 || !strings.Contains(string(ts.do(t, "GET", "/v1/binlog", nil).Body()), `"entries":[]`) {
		t.Fatalf("empty binlog: %+v", r)
	}
	// A short wait with nothing new answers with an empty page.
	if r := read("/v1/binlog?from=1&wait=10ms"); len(r.Entries) != 0 {
		t.Fatalf("empty wait: %+v", r)
	}
	for i := uint64(1); i <= 3; i++ {
		wantStatus(t, ts.do(t, "PUT", blockURI(i), []byte("x")), 201, "")
	}
	wantStatus(t, ts.do(t, "DELETE", blockURI(2), nil), 204, "")
	r = read("/v1/binlog?from=2&limit=2")
	if len(r.Entries) != 2 || r.Entries[0].Seq != 2 || r.Entries[1].ID != 3 || r.Last != 4 {
		t.Fatalf("page: %+v", r)
	}
	r = read("/v1/binlog?from=4")
	if len(r.Entries) != 1 || r.Entries[0].Op != wire.BinlogDelete || r.Entries[0].ID != 2 {
		t.Fatalf("delete entry: %+v", r)
	}

	// A long-poll for seq 5 wakes when a PUT makes it.
	got := make(chan wire.BinlogReply, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + ts.Addr() + "/v1/binlog?from=5&wait=1m")
		var r wire.BinlogReply
		if err := ts.hc.DoTimeout(req, resp, 2*time.Minute); err == nil {
			json.Unmarshal(resp.Body(), &r)
		}
		got <- r
	}()
	waitFor(t, func() bool { return ts.polling.Load() > 0 })
	wantStatus(t, ts.do(t, "PUT", blockURI(77), []byte("wake up")), 201, "")
	r = <-got
	if len(r.Entries) != 1 || r.Entries[0].Seq != 5 || r.Entries[0].ID != 77 {
		t.Fatalf("long-poll reply: %+v", r)
	}
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPAuth(t *testing.T) {
	cfg := testConfig(t)
	cfg.Secret = "s3cret"
	ts := startServer(t, cfg)
	wantStatus(t, ts.do(t, "PUT", blockURI(1), []byte("x")), 201, "")
	for _, secret := range []string{"", "wrong", "s3cret2"} {
		ts.secret = secret
		for _, uri := range []string{blockURI(1), "/v1/blocks", "/v1/binlog", "/v1/status", "/v1/nothing"} {
			wantStatus(t, ts.do(t, "GET", uri, nil), 401, wire.CodeUnauthorized)
		}
		wantStatus(t, ts.do(t, "PUT", blockURI(2), []byte("y")), 401, wire.CodeUnauthorized)
		wantStatus(t, ts.do(t, "DELETE", blockURI(1), nil), 401, wire.CodeUnauthorized)
		resp := ts.do(t, "GET", "/metrics", nil)
		wantStatus(t, resp, 200, "")
	}
	ts.secret = "s3cret"
	wantStatus(t, ts.do(t, "GET", blockURI(1), nil), 200, "")
	wantStatus(t, ts.do(t, "HEAD", blockURI(2), nil), 404, "")
	// Without a configured secret any header is fine.
	open := startServer(t, testConfig(t))
	open.secret = "anything"
	wantStatus(t, open.do(t, "PUT", blockURI(1), []byte("x")), 201, "")
}

func TestHTTPChecksumAndMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.Reserve = 1 << 20
	ts := startServer(t, cfg)
	data := bytes.Repeat([]byte{7}, 3*wire.CRCBlock)
	wantStatus(t, ts.do(t, "PUT", blockURI(0x55), data), 201, "")
	wantStatus(t, ts.do(t, "GET", blockURI(0x55), nil), 200, "")
	flipByte(t, ts.store.(*DiskStore).Path(0x55), wire.CRCBlock+1)

	resp := ts.do(t, "GET", blockURI(0x55), nil)
	wantStatus(t, resp, 500, wire.CodeChecksum)
	err := wire.ErrorFromResponse(resp)
	if !errors.Is(err, wire.ErrChecksum) || !strings.Contains(err.Error(), wire.BlockName(0x55)) ||
		!strings.Contains(err.Error(), ts.Addr()) || !strings.Contains(err.Error(), ts.ID()) {
		t.Fatalf("checksum error %q should name the block and the server", err)
	}
	resp = ts.do(t, "GET", blockURI(0x55), nil, "Range", "bytes=0-100")
	wantStatus(t, resp, 206, "")
	if !bytes.Equal(resp.Body(), data[:101]) {
		t.Fatal("undamaged range: wrong bytes")
	}
	wantStatus(t, ts.do(t, "GET", blockURI(0x55), nil, "Range", fmt.Sprintf("bytes=%d-", wire.CRCBlock)), 500, wire.CodeChecksum)

	body := string(ts.do(t, "GET", "/metrics", nil).Body())
	for _, want := range []string{
		"reelfs_chunk_checksum_errors_total 2",
		"reelfs_chunk_blocks 1",
		fmt.Sprintf("reelfs_chunk_used_bytes %d", len(data)),
		fmt.Sprintf("reelfs_chunk_written_bytes_total %d", len(data)),
		fmt.Sprintf("reelfs_chunk_read_bytes_total %d", len(data)+101),
		`reelfs_chunk_requests_total{code="201",method="PUT",op="block"} 1`,
		`reelfs_chunk_requests_total{code="500",method="GET",op="block"} 2`,
		"reelfs_chunk_inflight_requests 0",
		"reelfs_chunk_binlog_seq 1",
		`reelfs_chunk_block_seconds_count{method="PUT"} 1`,
		`reelfs_chunk_block_seconds_count{method="GET"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Free and capacity bytes are the disk's, less the reserve: check
	// they agree with statfs within what other writers to this disk
	// could change meanwhile (64 MiB).
	space, err := ts.store.DiskSpace()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"reelfs_chunk_free_bytes":     float64(space.Avail) - float64(ts.cfg.Reserve),
		"reelfs_chunk_capacity_bytes": float64(space.Capacity),
	} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("metrics lack %s", name)
			continue
		}
		got, err := strconv.ParseFloat(m[1], 64)
		if err != nil || math.Abs(got-max(want, 0)) > 64<<20 {
			t.Errorf("%s = %s, want about %.0f", name, m[1], max(want, 0))
		}
	}
}

func TestServerRestartKeepsIDAndBlocks(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	if _, err := s.store.Put(context.Background(), 5, []byte("persist")); err != nil {
		t.Fatal(err)
	}
	// A second server on the same directory is refused.
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on one dir: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("Run after Close: %v", err)
	}
	ts := startServer(t, cfg)
	if ts.ID() != id || len(id) != 16 {
		t.Fatalf("id %q after restart, was %q", ts.ID(), id)
	}
	resp := ts.do(t, "GET", blockURI(5), nil)
	wantStatus(t, resp, 200, "")
	if string(resp.Body()) != "persist" {
		t.Fatalf("block after restart: %q", resp.Body())
	}
	if err := ts.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	// A configured ID wins over the stored one.
	cfg2 := testConfig(t)
	cfg2.ID = "chunk-a"
	cfg2.Advertise = "chunk-a.example:9410"
	s2, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.ID() != "chunk-a" || s2.Addr() != "chunk-a.example:9410" {
		t.Fatalf("id %q addr %q", s2.ID(), s2.Addr())
	}
}

func TestShutdownEndsLongPolls(t *testing.T) {
	s, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	hc := &fasthttp.Client{}
	status := make(chan int, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + s.Addr() + "/v1/binlog?from=1&wait=5m")
		if err := hc.DoTimeout(req, resp, 10*time.Minute); err != nil {
			status <- -1
		} else {
			status <- resp.StatusCode()
		}
	}()
	waitFor(t, func() bool { return s.polling.Load() > 0 })
	cancel()
	if st := <-status; st != 200 {
		t.Fatalf("long-poll at shutdown: status %d", st)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
