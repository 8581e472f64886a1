package httpd

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testSecret = "cluster-secret"

func signedHarness(t *testing.T) *harness {
	h := newHarness(t, func(c *Config) { c.Secret = testSecret })
	h.fs.put(t, "/v/a b.mp4", randomBytes(4000, 20))
	h.fs.put(t, "/v/b.mp4", randomBytes(10, 21))
	h.fs.mkdir(t, "/v/sub")
	h.fs.put(t, "/v/sub/c.mp3", randomBytes(10, 22))
	return h
}

func TestSignedReads(t *testing.T) {
	h := signedHarness(t)
	now := time.Now()
	valid := Sign(testSecret, "/v/a b.mp4", now.Add(time.Hour))
	expired := Sign(testSecret, "/v/a b.mp4", now.Add(-time.Minute))
	other := Sign(testSecret, "/v/b.mp4", now.Add(time.Hour))
	e, sig, _ := strings.Cut(strings.TrimPrefix(valid, "e="), "&s=")
	tests := []struct {
		name, url string
		status    int
		reason    string
	}{
		{"valid", "/v/a%20b.mp4?" + valid, 200, ""},
		{"valid with download", "/v/a%20b.mp4?download&" + valid, 200, ""},
		{"signed url helper", strings.TrimPrefix(SignURL(h.base, testSecret, "/v/a b.mp4", time.Hour, now), h.base), 200, ""},
		{"missing", "/v/a%20b.mp4", 403, "signed URL required"},
		{"only e", "/v/a%20b.mp4?e=" + e, 403, "signed URL required"},
		{"expired", "/v/a%20b.mp4?" + expired, 403, "expired"},
		{"altered path", "/v/b.mp4?" + valid, 403, "does not match"},
		{"other file's signature", "/v/a%20b.mp4?" + other, 403, "does not match"},
		{"altered sig", "/v/a%20b.mp4?e=" + e + "&s=" + flipHex(sig), 403, "does not match"},
		{"altered expiry", "/v/a%20b.mp4?e=" + e + "0&s=" + sig, 403, "does not match"},
		{"wrong secret", "/v/a%20b.mp4?" + Sign("other", "/v/a b.mp4", now.Add(time.Hour)), 403, "does not match"},
		{"listing unsigned", "/v/", 403, "signed URL required"},
		{"player unsigned", "/player/v/a%20b.mp4", 403, "signed URL required"},
		{"missing file with bad sig", "/v/nope.mp4", 403, "signed URL required"},
		{"health is public", "/-/health", 200, ""},
	}
	for _, tt := range tests {
		resp, body := h.get(tt.url)
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.reason) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, resp.StatusCode, body, tt.status, tt.reason)
		}
	}
	resp, _ := h.do(http.MethodHead, "/v/a%20b.mp4", nil)
	wantStatus(t, resp, 403)
}

func flipHex(s string) string {
	if s[0] == '0' {
		return "1" + s[1:]
	}
	return "0" + s[1:]
}

var hrefRE = regexp.MustCompile(`href="([^"]+)"`)

// TestSignedLinks: every link of a signed listing and the player page's
// media source work, and carry the listing's own expiry.
func TestSignedLinks(t *testing.T) {
	h := signedHarness(t)
	exp := time.Now().Add(time.Hour)
	resp, body := h.get("/v/?" + Sign(testSecret, "/v", exp))
	wantStatus(t, resp, 200)
	links := hrefRE.FindAllStringSubmatch(string(body), -1)
	if len(links) != 6 { // parent, a b.mp4 + play, b.mp4 + play, sub/
		t.Fatalf("links %v", links)
	}
	for _, m := range links {
		href := strings.ReplaceAll(m[1], "&amp;", "&")
		if !strings.Contains(href, "e="+strconv.FormatInt(exp.Unix(), 10)+"&s=") {
			t.Errorf("link %s does not carry the listing's expiry", href)
		}
		resp, _ := h.get(href)
		if resp.StatusCode != 200 {
			t.Errorf("link %s: %d", href, resp.StatusCode)
		}
	}

	// The player page's src carries the request's signature, valid for
	// the file.
	q := Sign(testSecret, "/v/sub/c.mp3", exp)
	resp, body = h.get("/player/v/sub/c.mp3?" + q)
	wantStatus(t, resp, 200)
	m := regexp.MustCompile(`id="player" src="([^"]+)"`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no player src:\n%s", body)
	}
	src := strings.ReplaceAll(m[1], "&amp;", "&")
	if src != "/v/sub/c.mp3?"+q {
		t.Fatalf("src %q, want /v/sub/c.mp3?%s", src, q)
	}
	resp, _ = h.get(src)
	wantStatus(t, resp, 200)

	// Redirects keep the signature: /v -> /v/ with the same query.
	resp, _ = h.get("/v?" + Sign(testSecret, "/v", exp))
	wantStatus(t, resp, 301)
	resp, _ = h.get(resp.Header.Get("Location"))
	wantStatus(t, resp, 200)
}

// TestSignedReadsOptOut: SignedReads false keeps reads public with a
// secret, while writes still need the token.
func TestSignedReadsOptOut(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Secret, c.SignedReads = testSecret, false })
	h.fs.put(t, "/a.mp4", []byte("abc"))
	resp, body := h.get("/a.mp4")
	wantStatus(t, resp, 200)
	if string(body) != "abc" {
		t.Fatal(string(body))
	}
	resp, _ = h.do(http.MethodPut, "/b.mp4", strings.NewReader("x"))
	wantStatus(t, resp, 401)
}
