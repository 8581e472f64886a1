package httpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// activeStreams reads the active-streams gauge without a request (a
// request would open a connection of its own).
func (s *Server) activeStreams() float64 {
	var m dto.Metric
	if err := s.metrics.activeStreams.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

func (s *Server) openConns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.conns
}

// startStream sends a GET on a raw connection and reads the response
// header, leaving the body unread.
func startStream(t *testing.T, addr, path, rng string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: t\r\n"
	if rng != "" {
		req += "Range: " + rng + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 16<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	return c, br
}

// TestAbortedClientsNoLeak: clients that read slowly or a little and then
// hang up leave no goroutine, stream or open file behind.
func TestAbortedClientsNoLeak(t *testing.T) {
	h := newHarness(t, smallPieces)
	const size = 16 << 20
	h.fs.put(t, "/big.mp4", randomBytes(size, 40))
	h.fs.put(t, "/small.mp4", []byte("warm-up"))

	// Warm up the server's worker pool with one whole request, then let
	// everything settle for the baseline.
	c, br := startStream(t, h.srv.Addr(), "/small.mp4", "")
	_, _ = io.ReadAll(io.LimitReader(br, 7))
	_ = c.Close()
	eventually(t, "warm-up connection closed", func() bool { return h.srv.openConns() == 0 })
	baseline := runtime.NumGoroutine()

	for i, tc := range []struct {
		rng  string
		read int
		slow bool
	}{
		{"", 100 << 10, false},
		{"bytes=8000000-", 10 << 10, false},
		{"bytes=0-99,10000000-", 1 << 10, false},
		{"", 512 << 10, true},
		{"bytes=-5000000", 0, false},
	} {
		c, br := startStream(t, h.srv.Addr(), "/big.mp4", tc.rng)
		buf := make([]byte, 16<<10)
		for got := 0; got < tc.read; {
			n, err := br.Read(buf)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			got += n
			if tc.slow {
				time.Sleep(time.Millisecond)
			}
		}
		_ = c.Close()
		eventually(t, fmt.Sprintf("case %d: stream ended", i), func() bool {
			return h.fs.open.Load() == 0 && h.srv.openConns() == 0 && h.srv.activeStreams() == 0
		})
	}
	eventually(t, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseline
	})
}

// TestShutdownAbortsStalledTransfers: a client that stops reading, and an
// upload that stops sending, do not keep Run from returning; their files
// are closed and the upload leaves nothing.
func TestShutdownAbortsStalledTransfers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ShutdownTimeout = 100 * time.Millisecond
	cfg.AllowAnonymousWrites = true
	cfg.UploadPiece = 32 << 10
	cfg.AccessLog = true
	cfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	smallPieces(&cfg)
	fs := newFakeFS()
	fs.put(t, "/big.mp4", randomBytes(32<<20, 41))
	s, err := New(cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	reader, _ := startStream(t, s.Addr(), "/big.mp4", "")
	defer reader.Close()
	writer, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	fmt.Fprintf(writer, "PUT /up.mkv HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
	_, _ = writer.Write(randomBytes(200_000, 42))
	eventually(t, "both transfers under way", func() bool {
		return fs.open.Load() == 2 && fs.bytesInTemp("/") >= cfg.UploadPiece
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := fs.open.Load(); n != 0 {
		t.Fatalf("%d files open after Run returned", n)
	}
	if n := s.openConns(); n != 0 {
		t.Fatalf("%d connections open after Run returned", n)
	}
	if names := fs.names("/"); len(names) != 1 {
		t.Fatalf("files after shutdown: %v", names)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseLifecycle(t *testing.T) {
	// Close without Run releases the listener.
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, newFakeFS())
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("listener still accepting after Close")
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("Run after Close: %v", err)
	}

	// Close while running makes Run return.
	s2, err := New(cfg, newFakeFS())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s2.Run(context.Background()) }()
	resp, err := http.Get("http://" + s2.Addr() + "/-/health")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunWithEndedContext: a context that has ended before Serve starts
// (a server aborting its start-up) still makes Run return and release the
// listener. Shutdown alone does not stop a Serve that starts after it.
func TestRunWithEndedContext(t *testing.T) {
	for i := 0; i < 20; i++ { // the race is between Serve starting and shutdown
		cfg := DefaultConfig()
		cfg.Listen = "127.0.0.1:0"
		s, err := New(cfg, newFakeFS())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run with an ended context: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run with an ended context never returned: Serve kept accepting")
		}
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Fatal("listener still accepting after Run returned")
		}
	}
}
