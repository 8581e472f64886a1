package httpd

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// harness runs a Server on 127.0.0.1:0 over a fakeFS.
type harness struct {
	t    *testing.T
	fs   *fakeFS
	srv  *Server
	base string
	hc   *http.Client
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.AccessLog = true
	cfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if mod != nil {
		mod(&cfg)
	}
	fs := newFakeFS()
	srv, err := New(cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	h := &harness{
		t: t, fs: fs, srv: srv, base: "http://" + srv.Addr(),
		hc: &http.Client{
			Transport:     &http.Transport{DisableCompression: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	t.Cleanup(func() {
		h.hc.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if n := fs.open.Load(); n != 0 {
			t.Errorf("%d files left open after shutdown", n)
		}
	})
	return h
}

// do sends a request; kv are header name/value pairs.
func (h *harness) do(method, path string, body io.Reader, kv ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

func (h *harness) get(path string, kv ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.do(http.MethodGet, path, nil, kv...)
}

// raw sends a request line as is (for paths net/http would not send) and
// reads the response.
func (h *harness) raw(requestLine string) (*http.Response, string) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, requestLine+"\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		h.t.Fatalf("%q: %v", requestLine, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		what := "raw request"
		if resp.Request != nil {
			what = resp.Request.Method + " " + resp.Request.URL.String()
		}
		t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, want)
	}
}

// metric returns the value of a series from /-/metrics ("" if absent),
// on a connection of its own that the server closes after the answer.
func (h *harness) metric(series string) string {
	h.t.Helper()
	_, body := h.raw("GET /-/metrics HTTP/1.1") // Connection: close
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
