package httpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func smallPieces(c *Config) { c.PieceSize, c.ReadAhead = 64<<10, 256<<10 }

func TestGetWholeAndHead(t *testing.T) {
	h := newHarness(t, smallPieces)
	data := randomBytes(3<<20+17, 10)
	a := h.fs.put(t, "/v/a.mp4", data)

	resp, body := h.get("/v/a.mp4")
	wantStatus(t, resp, 200)
	if !bytes.Equal(body, data) {
		t.Fatalf("body differs: %d bytes", len(body))
	}
	wantHeaders := map[string]string{
		"Content-Type":                  "video/mp4",
		"Content-Length":                strconv.Itoa(len(data)),
		"Accept-Ranges":                 "bytes",
		"Etag":                          fmt.Sprintf(`"%x-%x"`, a.Ino, a.Version),
		"Last-Modified":                 "Fri, 01 Mar 2024 12:00:00 GMT",
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Expose-Headers": exposeHeaders,
	}
	for k, v := range wantHeaders {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET %s = %q, want %q", k, got, v)
		}
	}

	opens := h.fs.opens.Load()
	hresp, hbody := h.do(http.MethodHead, "/v/a.mp4", nil)
	wantStatus(t, hresp, 200)
	if len(hbody) != 0 {
		t.Fatalf("HEAD body of %d bytes", len(hbody))
	}
	for k := range resp.Header {
		if k == "Date" {
			continue
		}
		if hresp.Header.Get(k) != resp.Header.Get(k) {
			t.Errorf("HEAD %s = %q, GET gave %q", k, hresp.Header.Get(k), resp.Header.Get(k))
		}
	}
	if h.fs.opens.Load() != opens {
		t.Error("HEAD opened the file")
	}
	// HEAD ignores Range (RFC 9110 §14.2: Range is defined for GET only).
	hr, _ := h.do(http.MethodHead, "/v/a.mp4", nil, "Range", "bytes=0-0")
	wantStatus(t, hr, 200)
	if hr.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD with Range: Content-Length %s", hr.Header.Get("Content-Length"))
	}
}

func TestRanges(t *testing.T) {
	h := newHarness(t, smallPieces)
	const size = 2<<20 + 100
	data := randomBytes(size, 11)
	h.fs.put(t, "/m/clip.webm", data)
	n := strconv.Itoa(size)
	tests := []struct {
		rng          string
		status       int
		start, end   int // expected body data[start:end] for 200/206
		contentRange string
	}{
		{"bytes=0-0", 206, 0, 1, "bytes 0-0/" + n},
		{"bytes=0-499", 206, 0, 500, "bytes 0-499/" + n},
		{"bytes=-500", 206, size - 500, size, fmt.Sprintf("bytes %d-%d/%s", size-500, size-1, n)},
		{"bytes=2000000-", 206, 2000000, size, fmt.Sprintf("bytes 2000000-%d/%s", size-1, n)},
		{"bytes=100-99999999999999999999", 206, 100, size, fmt.Sprintf("bytes 100-%d/%s", size-1, n)},
		{"bytes=0-0,0-0,0-10", 206, 0, 11, "bytes 0-10/" + n},
		{"bytes=5-4", 200, 0, size, ""},
		{"items=0-1", 200, 0, size, ""},
		{"bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,26-27,28-29,30-31,32-33", 200, 0, size, ""},
		{"bytes=" + n + "-", 416, 0, 0, "bytes */" + n},
		{"bytes=-0", 416, 0, 0, "bytes */" + n},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			h.fs.resetReads()
			resp, body := h.get("/m/clip.webm", "Range", tt.rng)
			wantStatus(t, resp, tt.status)
			if got := resp.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tt.contentRange)
			}
			if tt.status == 416 {
				return
			}
			if !bytes.Equal(body, data[tt.start:tt.end]) {
				t.Fatalf("body: %d bytes, want data[%d:%d]", len(body), tt.start, tt.end)
			}
			if resp.Header.Get("Content-Type") != "video/webm" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if m := h.fs.minOff.Load(); m != int64(tt.start) {
				t.Errorf("lowest offset read %d, want the range start %d", m, tt.start)
			}
		})
	}
}

func TestMultipartRanges(t *testing.T) {
	h := newHarness(t, smallPieces)
	const size = 1 << 20
	data := randomBytes(size, 12)
	h.fs.put(t, "/m/song.flac", data)
	resp, body := h.get("/m/song.flac", "Range", "bytes=-10, 0-9,500000-600000")
	wantStatus(t, resp, 206)
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("Content-Length %s, body %d", resp.Header.Get("Content-Length"), len(body))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range []struct{ start, end int }{{size - 10, size}, {0, 10}, {500000, 600001}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		wantCR := fmt.Sprintf("bytes %d-%d/%d", want.start, want.end-1, size)
		if p.Header.Get("Content-Range") != wantCR || p.Header.Get("Content-Type") != "audio/flac" {
			t.Fatalf("part headers %v, want %s", p.Header, wantCR)
		}
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, data[want.start:want.end]) {
			t.Fatalf("part %s differs", wantCR)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("extra part: %v", err)
	}
}

func TestEmptyFile(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/empty.ts", nil)
	resp, body := h.get("/empty.ts")
	wantStatus(t, resp, 200)
	if len(body) != 0 || resp.Header.Get("Content-Length") != "0" || resp.Header.Get("Content-Type") != "video/mp2t" {
		t.Fatalf("empty file: %d bytes, headers %v", len(body), resp.Header)
	}
	resp, _ = h.get("/empty.ts", "Range", "bytes=0-")
	wantStatus(t, resp, 416)
	if resp.Header.Get("Content-Range") != "bytes */0" {
		t.Fatalf("Content-Range %q", resp.Header.Get("Content-Range"))
	}
	resp, _ = h.do(http.MethodHead, "/empty.ts", nil)
	wantStatus(t, resp, 200)
	if resp.Header.Get("Content-Length") != "0" {
		t.Fatalf("HEAD Content-Length %q", resp.Header.Get("Content-Length"))
	}
}

func TestConditionalRequests(t *testing.T) {
	h := newHarness(t, nil)
	data := randomBytes(5000, 13)
	a := h.fs.put(t, "/c.mp3", data)
	etag := etagOf(a)
	lm := "Fri, 01 Mar 2024 12:00:00 GMT"
	earlier := "Fri, 01 Mar 2024 11:00:00 GMT"
	tests := []struct {
		name   string
		kv     []string
		status int
		body   []byte
	}{
		{"inm match", []string{"If-None-Match", etag}, 304, nil},
		{"inm weak match", []string{"If-None-Match", "W/" + etag}, 304, nil},
		{"inm star", []string{"If-None-Match", "*"}, 304, nil},
		{"inm other", []string{"If-None-Match", `"0-0"`}, 200, data},
		{"ims equal", []string{"If-Modified-Since", lm}, 304, nil},
		{"ims earlier", []string{"If-Modified-Since", earlier}, 200, data},
		{"ims ignored with inm", []string{"If-None-Match", `"0-0"`, "If-Modified-Since", lm}, 200, data},
		{"if-match ok", []string{"If-Match", etag}, 200, data},
		{"if-match other", []string{"If-Match", `"0-0"`}, 412, nil},
		{"ius earlier", []string{"If-Unmodified-Since", earlier}, 412, nil},
		{"ius equal", []string{"If-Unmodified-Since", lm}, 200, data},
		{"if-range etag", []string{"Range", "bytes=10-19", "If-Range", etag}, 206, data[10:20]},
		{"if-range date", []string{"Range", "bytes=10-19", "If-Range", lm}, 206, data[10:20]},
		{"if-range stale etag", []string{"Range", "bytes=10-19", "If-Range", `"0-0"`}, 200, data},
		{"if-range weak", []string{"Range", "bytes=10-19", "If-Range", "W/" + etag}, 200, data},
		{"if-range other date", []string{"Range", "bytes=10-19", "If-Range", earlier}, 200, data},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.get("/c.mp3", tt.kv...)
			wantStatus(t, resp, tt.status)
			switch tt.status {
			case 304:
				if len(body) != 0 || resp.Header.Get("Etag") != etag || resp.Header.Get("Last-Modified") != lm {
					t.Fatalf("304: body %d, headers %v", len(body), resp.Header)
				}
			case 412:
				if resp.Header.Get("Etag") != "" {
					t.Fatal("412 carries an ETag")
				}
			default:
				if !bytes.Equal(body, tt.body) {
					t.Fatalf("body %d bytes, want %d", len(body), len(tt.body))
				}
			}
		})
	}
	// A new version gets a new tag: the old one no longer revalidates.
	a2 := h.fs.put(t, "/c.mp3", data[:100])
	if etagOf(a2) == etag {
		t.Fatal("etag unchanged by a new version")
	}
	resp, body := h.get("/c.mp3", "If-None-Match", etag)
	wantStatus(t, resp, 200)
	if len(body) != 100 {
		t.Fatalf("%d bytes", len(body))
	}
}

func TestDownloadAndTypes(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/d/Sub Title.SRT", []byte("1\n00:00:01,000 --> 00:00:02,000\nhi\n"))
	h.fs.put(t, "/d/映画.mkv", []byte("x"))
	resp, _ := h.get("/d/Sub%20Title.SRT")
	if resp.Header.Get("Content-Type") != "application/x-subrip" || resp.Header.Get("Content-Disposition") != "" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, _ = h.get("/d/%E6%98%A0%E7%94%BB.mkv?download")
	wantStatus(t, resp, 200)
	cd := resp.Header.Get("Content-Disposition")
	if cd != `attachment; filename="__.mkv"; filename*=UTF-8''%E6%98%A0%E7%94%BB.mkv` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if resp.Header.Get("Content-Type") != "video/x-matroska" {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
}

func TestNotFoundAndSpecialFiles(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/f.mp4", []byte("x"))
	h.fs.symlink(t, "/link")
	for path, want := range map[string]int{
		"/missing.mp4": 404, "/f.mp4/": 404, "/f.mp4/x": 404, "/link": 404, "/-/nothing": 404,
	} {
		resp, body := h.get(path)
		wantStatus(t, resp, want)
		if !strings.HasSuffix(string(body), "\n") || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: body %q type %q", path, body, resp.Header.Get("Content-Type"))
		}
	}
	resp, _ := h.do("PATCH", "/f.mp4", nil)
	wantStatus(t, resp, 405)
	if resp.Header.Get("Allow") != allowMethods {
		t.Fatalf("Allow %q", resp.Header.Get("Allow"))
	}
}

func TestStorageErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/f.mp4", randomBytes(1000, 14))
	unavailable := error(wire.Errorf(wire.ErrUnavailable, "chunkserver 10.0.0.7:9 down"))
	h.fs.readErr.Store(&unavailable)
	resp, body := h.get("/f.mp4")
	wantStatus(t, resp, 503)
	if resp.Header.Get("Retry-After") == "" || resp.Header.Get(wire.HeaderError) != "UNAVAILABLE" ||
		strings.Contains(string(body), "10.0.0.7") || resp.Header.Get("Etag") != "" {
		t.Fatalf("503: headers %v body %q", resp.Header, body)
	}
	checksum := error(wire.Errorf(wire.ErrChecksum, "block 00000000000000aa"))
	h.fs.readErr.Store(&checksum)
	resp, _ = h.get("/f.mp4", "Range", "bytes=10-20")
	wantStatus(t, resp, 500)
	h.fs.readErr.Store(nil)

	resp, _ = h.get("/-/health")
	wantStatus(t, resp, 200)
	h.fs.failResolve.Store(&unavailable)
	resp, _ = h.get("/-/health")
	wantStatus(t, resp, 503)
	resp, _ = h.get("/f.mp4")
	wantStatus(t, resp, 503)
	h.fs.failResolve.Store(nil)
}

func TestTraversalRejected(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/a/b.mp4", []byte("x"))
	tests := []struct{ line, reason string }{
		{"GET /../etc/passwd HTTP/1.1", "contains .."},
		{"GET /%2e%2e/ HTTP/1.1", "contains .."},
		{"GET /a/%2e%2E/a/b.mp4 HTTP/1.1", "contains .."},
		{"GET /a/%2F..%2F HTTP/1.1", "encoded slash"},
		{"GET /a%2fb.mp4 HTTP/1.1", "encoded slash"},
		{"GET //x HTTP/1.1", "must not start with //"},
		{"GET /a%00b HTTP/1.1", "NUL"},
		{`GET /..\etc\passwd HTTP/1.1`, "contains .."},
		{"GET /a/%5c..%5c..%5cetc HTTP/1.1", "contains .."},
		{"GET /a%zz HTTP/1.1", "bad percent escape"},
		{"HEAD /../x HTTP/1.1", ""},
		{"PUT /../x HTTP/1.1", "writes need a cluster secret"},
		{"GET /player/../etc HTTP/1.1", "contains .."},
	}
	for _, tt := range tests {
		resp, body := h.raw(tt.line)
		want := 400
		if strings.HasPrefix(tt.line, "PUT") {
			want = 403 // the write rules come first
		}
		wantStatus(t, resp, want)
		if !strings.Contains(body, tt.reason) {
			t.Errorf("%q: body %q, want reason %q", tt.line, body, tt.reason)
		}
	}
	// A NUL byte in the request line never reaches a file either.
	resp, _ := h.raw("GET /a\x00b HTTP/1.1")
	if resp.StatusCode != 400 {
		t.Fatalf("raw NUL: %d", resp.StatusCode)
	}
	// "%252e%252e" is a name, decoded once: not found, not a traversal.
	resp, _ = h.raw("GET /%252e%252e/a HTTP/1.1")
	wantStatus(t, resp, 404)
}

func TestCORSPreflight(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.do(http.MethodOptions, "/any/path.mp4", nil,
		"Origin", "https://player.example", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "range")
	wantStatus(t, resp, 204)
	if len(body) != 0 {
		t.Fatal("preflight body")
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, DELETE, OPTIONS",
		"Access-Control-Max-Age":       "86400",
	} {
		if resp.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	allowed := resp.Header.Get("Access-Control-Allow-Headers")
	for _, want := range []string{"Range", "If-Range", "If-None-Match", "Authorization", "Content-Type"} {
		if !strings.Contains(allowed, want) {
			t.Errorf("Allow-Headers %q lacks %s", allowed, want)
		}
	}
}

func TestMetricsShowSeeks(t *testing.T) {
	h := newHarness(t, nil)
	const size = 100_000
	h.fs.put(t, "/s.mp4", randomBytes(size, 15))
	if h.metric("reelfs_httpd_far_ranges_total") != "0" {
		t.Fatal("far ranges before any seek")
	}
	h.get("/s.mp4", "Range", "bytes=0-99")
	h.get("/s.mp4", "Range", "bytes=90000-")
	h.get("/s.mp4", "Range", "bytes=0-1,80000-80001")
	h.get("/s.mp4")
	if got := h.metric("reelfs_httpd_far_ranges_total"); got != "2" {
		t.Fatalf("far ranges %q, want 2", got)
	}
	if got := h.metric(`reelfs_httpd_range_requests_total{kind="single"}`); got != "2" {
		t.Fatalf("single ranges %q", got)
	}
	if got := h.metric(`reelfs_httpd_range_requests_total{kind="multi"}`); got != "1" {
		t.Fatalf("multi ranges %q", got)
	}
	if got := h.metric(`reelfs_httpd_range_start_ratio_bucket{le="0.1"}`); got != "2" {
		t.Fatalf("ratio bucket 0.1 %q", got)
	}
	if got := h.metric(`reelfs_httpd_requests_total{code="206",method="GET"}`); got != "3" {
		t.Fatalf("206 count %q", got)
	}
	sent, _ := strconv.ParseFloat(h.metric("reelfs_httpd_sent_bytes_total"), 64)
	if sent < 100+10000+size {
		t.Fatalf("sent bytes %v", sent)
	}
	// fasthttp closes a body stream after its last byte is written, so the
	// client can read the whole body before the gauge drops.
	eventually(t, "streams closed", func() bool {
		return h.metric("reelfs_httpd_active_streams") == "0"
	})
}

func TestListing(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ListPage = 5 })
	h.fs.put(t, "/v/a b.mp4", randomBytes(2048, 16))
	h.fs.put(t, `/v/<b>&"x".mp3`, []byte("x"))
	h.fs.put(t, "/v/notes.txt", []byte("x"))
	h.fs.mkdir(t, "/v/sub")

	resp, _ := h.get("/v?format=json")
	wantStatus(t, resp, 301)
	if resp.Header.Get("Location") != "/v/?format=json" {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}

	resp, body := h.get("/v/")
	wantStatus(t, resp, 200)
	page := string(body)
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("type %q", resp.Header.Get("Content-Type"))
	}
	if strings.Contains(page, "<b>") || !strings.Contains(page, "&lt;b&gt;&amp;&#34;x&#34;.mp3") {
		t.Fatalf("name not escaped:\n%s", page)
	}
	for _, want := range []string{
		`href="/v/a%20b.mp4"`, `href="/player/v/a%20b.mp4"`, `href="/v/sub/"`, `>sub/</a>`,
		`href="/v/%3Cb%3E&amp;%22x%22.mp3"`, `href="/player/v/%3Cb%3E&amp;%22x%22.mp3"`, `href="/"`, "2.0 KiB",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("listing lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "/player/v/notes.txt") || strings.Contains(page, "/player/v/sub") {
		t.Error("player link for a non-media entry")
	}

	resp, body = h.get("/v/?format=json")
	wantStatus(t, resp, 200)
	var l jsonListing
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	if l.Path != "/v/" || l.More || len(l.Entries) != 4 {
		t.Fatalf("json listing %+v", l)
	}
	want := []jsonEntry{
		{Name: `<b>&"x".mp3`, Size: 1, Mode: wire.ModeRegular | 0o644},
		{Name: "a b.mp4", Size: 2048, Mode: wire.ModeRegular | 0o644},
		{Name: "notes.txt", Size: 1, Mode: wire.ModeRegular | 0o644},
		{Name: "sub", Mode: wire.ModeDir | 0o755, Dir: true},
	}
	for i, e := range l.Entries {
		if _, err := time.Parse(time.RFC3339, e.Mtime); err != nil {
			t.Errorf("mtime %q", e.Mtime)
		}
		e.Mtime = ""
		if e != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, e, want[i])
		}
	}

	// Root lists too and has no parent link.
	resp, body = h.get("/")
	wantStatus(t, resp, 200)
	if !strings.Contains(string(body), `href="/v/"`) || strings.Contains(string(body), "../") {
		t.Fatalf("root listing:\n%s", body)
	}
}

func TestListingPages(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ListPage = 5 })
	var names []string
	for i := range 12 {
		name := fmt.Sprintf("f%02d.mp4", i)
		names = append(names, name)
		h.fs.put(t, "/many/"+name, []byte{byte(i)})
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		_, body := h.get("/many/?format=json&after=" + after)
		var l jsonListing
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		for _, e := range l.Entries {
			got = append(got, e.Name)
		}
		if !l.More {
			break
		}
		if len(l.Entries) != 5 || l.Next != l.Entries[4].Name {
			t.Fatalf("page %+v", l)
		}
		after = l.Next
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("paged names %v", got)
	}
	_, body := h.get("/many/")
	if !strings.Contains(string(body), `href="/many/?after=f04.mp4"`) {
		t.Fatalf("no next link:\n%s", body)
	}
}

func TestPlayerPage(t *testing.T) {
	h := newHarness(t, nil)
	h.fs.put(t, "/v/my movie.mp4", []byte("x"))
	h.fs.put(t, "/v/song.mp3", []byte("x"))
	h.fs.put(t, `/v/"><img src=x onerror=alert(1)>.webm`, []byte("x"))

	resp, body := h.get("/player/v/my%20movie.mp4")
	wantStatus(t, resp, 200)
	page := string(body)
	for _, want := range []string{`<video id="player" src="/v/my%20movie.mp4" controls autoplay muted`, `href="/v/my%20movie.mp4?download"`} {
		if !strings.Contains(page, want) {
			t.Errorf("player lacks %s:\n%s", want, page)
		}
	}
	_, body = h.get("/player/v/song.mp3")
	if !strings.Contains(string(body), `<audio id="player" src="/v/song.mp3" controls`) {
		t.Errorf("audio player:\n%s", body)
	}
	resp, body = h.get("/player/v/%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E.webm")
	wantStatus(t, resp, 200)
	if strings.Contains(string(body), "<img") || !strings.Contains(string(body), `&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.webm`) {
		t.Fatalf("player page not escaped:\n%s", body)
	}
	resp, _ = h.get("/player/v/")
	wantStatus(t, resp, 404)
	resp, _ = h.get("/player/v/missing.mp4")
	wantStatus(t, resp, 404)
}
