package chunkserver

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// FuzzBlockHandler feeds random methods, paths, queries, headers and
// bodies to the HTTP handler. Every answer must be 2xx or 4xx, nothing may
// panic, and a block stored beforehand must stay intact.
func FuzzBlockHandler(f *testing.F) {
	seeds := []struct {
		method, uri, rng, crc string
		body                  []byte
	}{
		{"PUT", "/v1/block/0000000000000001", "", "", []byte("hello")},
		{"PUT", "/v1/block/0000000000000002", "", "3610a686", []byte("hello")},
		{"GET", "/v1/block/0000000000000001", "bytes=0-2", "", nil},
		{"GET", "/v1/block/0000000000000001", "bytes=-2", "", nil},
		{"GET", "/v1/block/0000000000000001", "bytes=9-", "", nil},
		{"HEAD", "/v1/block/0000000000000001", "", "", nil},
		{"DELETE", "/v1/block/0000000000000001", "", "", nil},
		{"GET", "/v1/blocks?after=1&limit=3&before=1", "", "", nil},
		{"GET", "/v1/binlog?from=1&limit=2&wait=5m", "", "", nil},
		{"GET", "/v1/status", "", "", nil},
		{"GET", "/metrics", "", "", nil},
		{"POST", "/v1/block/zz", "", "", []byte("x")},
		{"GET", "/v1/block/%30%30", "bytes=1-0", "", nil},
		{"BREW", "/../../etc/passwd?x=1&x=2", "bytes=0-1,2-3", "nothex!!", nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.uri, s.rng, s.crc, s.body)
	}
	cfg := DefaultConfig()
	cfg.Dir = f.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Reserve = 0
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.stopPolls() // long-polls answer at once instead of waiting
	const sentinel = 0x5e47
	sentinelData := bytes.Repeat([]byte("sentinel"), 20000)
	if _, err := s.store.Put(context.Background(), sentinel, sentinelData); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, uri, rng, crc string, body []byte) {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		if crc != "" {
			req.Header.Set(wire.HeaderCRC, crc)
		}
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		if strings.Contains(strings.ToLower(string(ctx.Path())), wire.BlockName(sentinel)) {
			return // deleting the sentinel is allowed; it is not harm
		}
		s.handle(&ctx)
		status := ctx.Response.StatusCode()
		ctx.Response.Reset() // returns a pooled GET buffer
		if status/100 != 2 && status/100 != 4 {
			t.Fatalf("%q %q (Range %q, CRC %q, %d bytes): status %d", method, uri, rng, crc, len(body), status)
		}
		got, err := readAll(context.Background(), s.store.(*DiskStore), sentinel)
		if err != nil || !bytes.Equal(got, sentinelData) {
			t.Fatalf("sentinel block harmed after %q %q: %v", method, uri, err)
		}
	})
}
