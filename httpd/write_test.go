package httpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func bearer(s string) []string { return []string{"Authorization", "Bearer " + s} }

func TestWriteAuthRules(t *testing.T) {
	t.Run("no secret refuses writes", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fs.put(t, "/a.mp4", []byte("x"))
		resp, body := h.do(http.MethodPut, "/b.mp4", strings.NewReader("data"))
		wantStatus(t, resp, 403)
		if !strings.Contains(string(body), "writes need a cluster secret") {
			t.Fatalf("body %q", body)
		}
		resp, _ = h.do(http.MethodDelete, "/a.mp4", nil)
		wantStatus(t, resp, 403)
		if _, ok := h.fs.data("/a.mp4"); !ok {
			t.Fatal("refused DELETE removed the file")
		}
	})
	t.Run("secret needs bearer", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.Secret = testSecret })
		h.fs.mkdir(t, "/up")
		for _, kv := range [][]string{nil, bearer("wrong"), {"Authorization", testSecret}, {"Authorization", "Basic " + testSecret}} {
			resp, _ := h.do(http.MethodPut, "/up/x.mp4", strings.NewReader("data"), kv...)
			wantStatus(t, resp, 401)
			if resp.Header.Get("Www-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		}
		if names := h.fs.names("/up"); len(names) != 0 {
			t.Fatalf("unauthorized PUT left %v", names)
		}
		resp, _ := h.do(http.MethodPut, "/up/x.mp4", strings.NewReader("data"), bearer(testSecret)...)
		wantStatus(t, resp, 201)
		if resp.Header.Get("Location") != "/up/x.mp4" || resp.Header.Get("Etag") == "" {
			t.Fatalf("201 headers %v", resp.Header)
		}
		resp, _ = h.do(http.MethodPut, "/up/x.mp4", strings.NewReader("new data"), bearer(testSecret)...)
		wantStatus(t, resp, 204)
		if d, _ := h.fs.data("/up/x.mp4"); string(d) != "new data" {
			t.Fatalf("content %q", d)
		}
		resp, _ = h.do(http.MethodDelete, "/up/x.mp4", nil)
		wantStatus(t, resp, 401)
		resp, _ = h.do(http.MethodDelete, "/up/x.mp4", nil, bearer(testSecret)...)
		wantStatus(t, resp, 204)
		resp, _ = h.do(http.MethodDelete, "/up/x.mp4", nil, bearer(testSecret)...)
		wantStatus(t, resp, 404)
	})
	t.Run("anonymous writes when allowed", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.AllowAnonymousWrites = true })
		resp, _ := h.do(http.MethodPut, "/x.mp4", strings.NewReader("data"))
		wantStatus(t, resp, 201)
		resp, body := h.get("/x.mp4")
		wantStatus(t, resp, 200)
		if string(body) != "data" {
			t.Fatalf("body %q", body)
		}
	})
}

func TestWriteTargets(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowAnonymousWrites = true })
	a := h.fs.put(t, "/d/f.mp4", []byte("old"))
	h.fs.put(t, "/d/full/x", []byte("x"))
	h.fs.mkdir(t, "/d/empty")
	tests := []struct {
		method, path string
		kv           []string
		status       int
		reason       string
	}{
		{"PUT", "/nope/x.mp4", nil, 409, "parent directory does not exist"},
		{"PUT", "/d/f.mp4/x", nil, 409, "parent"},
		{"PUT", "/d/empty", nil, 409, "not a regular file"},
		{"PUT", "/d/", nil, 400, "needs a file path"},
		{"PUT", "/", nil, 400, "needs a file path"},
		{"PUT", "/-/metrics", nil, 400, "reserved"},
		{"PUT", "/player/x.mp4", nil, 400, "reserved"},
		{"PUT", "/d/f.mp4", []string{"If-None-Match", "*"}, 412, "precondition"},
		{"PUT", "/d/f.mp4", []string{"If-Match", `"0-0"`}, 412, "precondition"},
		{"PUT", "/d/new.mp4", []string{"If-Match", "*"}, 412, "precondition"},
		{"DELETE", "/d/full", nil, 409, "not empty"},
		{"DELETE", "/d/f.mp4", []string{"If-Match", `"0-0"`}, 412, "precondition"},
		{"DELETE", "/", nil, 400, "needs a file path"},
		{"DELETE", "/d/missing", nil, 404, "not found"},
		{"DELETE", "/d/empty/", nil, 204, ""},
		{"PUT", "/d/f.mp4", []string{"If-Match", etagOf(a)}, 204, ""},
		{"PUT", "/d/created.mp4", []string{"If-None-Match", "*"}, 201, ""},
	}
	for _, tt := range tests {
		resp, body := h.do(tt.method, tt.path, strings.NewReader("body"), tt.kv...)
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.reason) {
			t.Errorf("%s %s %v: %d %q, want %d %q", tt.method, tt.path, tt.kv, resp.StatusCode, body, tt.status, tt.reason)
		}
	}
	if d, _ := h.fs.data("/d/f.mp4"); string(d) != "body" {
		t.Fatalf("conditional PUT content %q", d)
	}
	for _, n := range h.fs.names("/d") {
		if strings.HasPrefix(n, uploadPrefix) {
			t.Fatalf("temporary file %s left behind", n)
		}
	}
}

// TestStreamingPut: a body many times UploadPiece, chunked and with a
// length, arrives whole; the server writes it while the body is still
// coming, in pieces, never holding it all.
func TestStreamingPut(t *testing.T) {
	const piece = 64 << 10
	h := newHarness(t, func(c *Config) { c.AllowAnonymousWrites = true; c.UploadPiece = piece })
	h.fs.mkdir(t, "/up")
	data := randomBytes(20*piece+123, 30)

	// Chunked: a pipe feeds the first half, and the second half only once
	// the server has stored part of the first: it streams, it does not
	// wait for the whole body.
	pr, pw := io.Pipe()
	streamed := make(chan bool, 1)
	go func() {
		_, _ = pw.Write(data[:len(data)/2])
		ok := false
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ok = h.fs.bytesInTemp("/up") >= piece; ok {
				break
			}
		}
		streamed <- ok
		_, _ = pw.Write(data[len(data)/2:])
		_ = pw.Close()
	}()
	resp, body := h.do(http.MethodPut, "/up/chunked.mkv", pr)
	wantStatus(t, resp, 201)
	if !<-streamed {
		t.Fatal("nothing was stored before the body ended: the upload was buffered")
	}
	if got, _ := h.fs.data("/up/chunked.mkv"); !bytes.Equal(got, data) {
		t.Fatalf("chunked upload: %d bytes stored, want %d (%s)", len(got), len(data), body)
	}

	resp, _ = h.do(http.MethodPut, "/up/sized.mkv", bytes.NewReader(data))
	wantStatus(t, resp, 201)
	if got, _ := h.fs.data("/up/sized.mkv"); !bytes.Equal(got, data) {
		t.Fatal("sized upload differs")
	}
	if got, _ := strconv.ParseFloat(h.metric("reelfs_httpd_received_bytes_total"), 64); got != float64(2*len(data)) {
		t.Fatalf("received bytes %v", got)
	}
	if names := h.fs.names("/up"); len(names) != 2 {
		t.Fatalf("files %v", names)
	}
}

// bytesInTemp is the size of the upload temporary file in dir (0 if none).
func (f *fakeFS) bytesInTemp(dir string) int {
	for _, n := range f.names(dir) {
		if strings.HasPrefix(n, uploadPrefix) {
			d, _ := f.data(dir + "/" + n)
			return len(d)
		}
	}
	return 0
}

// TestAbortedPut: a client that disconnects mid-upload leaves neither the
// target nor the temporary file, and an existing file keeps its content.
func TestAbortedPut(t *testing.T) {
	const piece = 32 << 10
	h := newHarness(t, func(c *Config) { c.AllowAnonymousWrites = true; c.UploadPiece = piece })
	h.fs.put(t, "/up/keep.mp4", []byte("original"))
	for _, tc := range []struct{ name, header string }{
		{"new.mp4", "Content-Length: 1000000"},
		{"keep.mp4", "Content-Length: 1000000"},
		{"chunked.mp4", "Transfer-Encoding: chunked"},
	} {
		c, err := net.Dial("tcp", h.srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT /up/%s HTTP/1.1\r\nHost: t\r\n%s\r\n\r\n", tc.name, tc.header)
		part := randomBytes(300_000, 31)
		if strings.Contains(tc.header, "chunked") {
			fmt.Fprintf(c, "%x\r\n", len(part))
		}
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
		eventually(t, "upload under way", func() bool { return h.fs.bytesInTemp("/up") >= piece })
		_ = c.Close()
		eventually(t, "abandoned upload removed", func() bool {
			return h.fs.bytesInTemp("/up") == 0 && h.fs.open.Load() == 0 && len(h.fs.names("/up")) == 1
		})
		if d, _ := h.fs.data("/up/keep.mp4"); string(d) != "original" {
			t.Fatalf("%s: existing file became %q", tc.name, d)
		}
	}

	// A body shorter than its Content-Length (the client half-closes
	// early) is refused, not stored short.
	c, err := net.Dial("tcp", h.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /up/short.mp4 HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n")
	_, _ = c.Write(randomBytes(100_000, 32))
	_ = c.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "upload incomplete") {
		t.Fatalf("short body: %d %q", resp.StatusCode, b)
	}
	if names := h.fs.names("/up"); len(names) != 1 {
		t.Fatalf("files after short upload: %v", names)
	}
}

// TestExpectContinueRefusedEarly sends an upload's headers with
// "Expect: 100-continue" and no body: a refused write must get its final
// status at once, never a 100 that invites a body it would not read.
func TestExpectContinueRefusedEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		hdr  string
		want int
	}{
		{"no token", func(c *Config) { c.Secret = testSecret }, "", 401},
		{"no secret", nil, "", 403},
		{"good token", func(c *Config) { c.Secret = testSecret }, "Authorization: Bearer " + testSecret + "\r\n", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.mod)
			conn, err := net.Dial("tcp", h.srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "PUT /x.mp4 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n%s\r\n", tc.hdr)
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, fmt.Sprintf("HTTP/1.1 %d ", tc.want)) {
				t.Fatalf("first response line %q, want status %d", line, tc.want)
			}
		})
	}
}
