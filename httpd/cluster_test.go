package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/metaserver"
)

// runDaemon runs a daemon's Run until the test ends.
func runDaemon(t *testing.T, name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

// TestWithRealCluster serves an in-process metaserver and chunkserver
// through FromClient: uploads stream into blocks, and reads, ranges and
// listings come back byte for byte.
func TestWithRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir = t.TempDir()
	mcfg.Listen = "127.0.0.1:0"
	meta, err := metaserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, "metaserver", meta.Run)

	ccfg := chunkserver.DefaultConfig()
	ccfg.Dir = t.TempDir()
	ccfg.Listen = "127.0.0.1:0"
	ccfg.ID = "cs1"
	ccfg.Group = 1
	ccfg.Meta = meta.Addr()
	ccfg.HeartbeatEvery = 50 * time.Millisecond
	ccfg.MinCopies = 1
	chunk, err := chunkserver.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, "chunkserver", chunk.Run)

	cc := client.DefaultConfig()
	cc.Meta = meta.Addr()
	cc.RetryTimeout = 20 * time.Second
	c, err := client.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	eventually(t, "chunkserver healthy", func() bool {
		groups, err := c.Groups(context.Background())
		return err == nil && len(groups) > 0 && len(groups[0].Members) > 0 && groups[0].Members[0].Healthy && groups[0].Members[0].InSync
	})
	if _, err := c.MkdirAll(context.Background(), "/media", 0o755); err != nil {
		t.Fatal(err)
	}

	hcfg := DefaultConfig()
	hcfg.Listen = "127.0.0.1:0"
	hcfg.AllowAnonymousWrites = true
	hcfg.PieceSize, hcfg.ReadAhead = 256<<10, 1<<20
	hcfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := New(hcfg, FromClient(c))
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, "httpd", srv.Run)
	h := &harness{t: t, srv: srv, base: "http://" + srv.Addr(), hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	t.Cleanup(h.hc.CloseIdleConnections)

	data := randomBytes(9<<20+12345, 50)
	resp, body := h.do(http.MethodPut, "/media/film%201.mp4", bytes.NewReader(data))
	wantStatus(t, resp, 201)
	etag := resp.Header.Get("Etag")

	resp, body = h.get("/media/film%201.mp4")
	wantStatus(t, resp, 200)
	if !bytes.Equal(body, data) || resp.Header.Get("Etag") != etag {
		t.Fatalf("GET: %d bytes, etag %s (PUT said %s)", len(body), resp.Header.Get("Etag"), etag)
	}
	resp, body = h.get("/media/film%201.mp4", "Range", "bytes=8000000-8100000")
	wantStatus(t, resp, 206)
	if !bytes.Equal(body, data[8000000:8100001]) {
		t.Fatal("range differs")
	}
	resp, body = h.get("/media/film%201.mp4", "Range", "bytes=-10,0-9")
	wantStatus(t, resp, 206)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi range type %q", resp.Header.Get("Content-Type"))
	}
	resp, _ = h.get("/media/film%201.mp4", "If-None-Match", etag)
	wantStatus(t, resp, 304)

	resp, body = h.get("/media/?format=json")
	wantStatus(t, resp, 200)
	var l jsonListing
	if err := json.Unmarshal(body, &l); err != nil || len(l.Entries) != 1 || l.Entries[0].Name != "film 1.mp4" ||
		l.Entries[0].Size != uint64(len(data)) {
		t.Fatalf("listing %s: %v", body, err)
	}

	// Replacing gives a new ETag; the old one no longer revalidates.
	resp, _ = h.do(http.MethodPut, "/media/film%201.mp4", bytes.NewReader(data[:1000]))
	wantStatus(t, resp, 204)
	resp, body = h.get("/media/film%201.mp4", "If-None-Match", etag)
	wantStatus(t, resp, 200)
	if !bytes.Equal(body, data[:1000]) || resp.Header.Get("Etag") == etag {
		t.Fatalf("after replace: %d bytes, etag %s", len(body), resp.Header.Get("Etag"))
	}
	resp, _ = h.do(http.MethodDelete, "/media/film%201.mp4", nil)
	wantStatus(t, resp, 204)
	resp, _ = h.get("/media/film%201.mp4")
	wantStatus(t, resp, 404)
	entries, err := c.ReadDirAll(context.Background(), mustResolve(t, c, "/media"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("/media after delete: %v %v", entries, err)
	}
}

func mustResolve(t *testing.T, c *client.Client, p string) uint64 {
	t.Helper()
	a, err := c.Resolve(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return a.Ino
}
