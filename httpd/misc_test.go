package httpd

import (
	"errors"
	"mime"
	"strings"
	"testing"
	"time"
)

func TestContentType(t *testing.T) {
	tests := map[string]string{
		"a.mp4": "video/mp4", "A.MP4": "video/mp4", "x.m4v": "video/x-m4v", "x.m4a": "audio/mp4",
		"x.mov": "video/quicktime", "x.mkv": "video/x-matroska", "x.webm": "video/webm",
		"x.ts": "video/mp2t", "x.m3u8": "application/vnd.apple.mpegurl", "x.mpd": "application/dash+xml",
		"x.mp3": "audio/mpeg", "x.aac": "audio/aac", "x.flac": "audio/flac", "x.ogg": "audio/ogg",
		"x.opus": "audio/ogg", "x.wav": "audio/wav", "x.jpg": "image/jpeg", "x.JPEG": "image/jpeg",
		"x.png": "image/png", "x.webp": "image/webp", "x.vtt": "text/vtt; charset=utf-8",
		"x.srt": "application/x-subrip", "x.bin": "application/octet-stream", "noext": "application/octet-stream",
		"x.": "application/octet-stream", ".mp4": "video/mp4", "a.tar.gz": "application/octet-stream",
	}
	for name, want := range tests {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
	if !playable("video/mp4") || !playable("audio/flac") || !playable("application/vnd.apple.mpegurl") || playable("image/png") {
		t.Fatal("playable")
	}
}

func TestSignVerify(t *testing.T) {
	const secret = "s3cret"
	now := time.Unix(1_700_000_000, 0)
	q := Sign(secret, "/movies/a b.mp4", now.Add(time.Hour))
	e, sig, ok := strings.Cut(strings.TrimPrefix(q, "e="), "&s=")
	if !ok || e != "1700003600" || len(sig) != 64 {
		t.Fatalf("Sign = %q", q)
	}
	tests := []struct {
		name, path, e, s string
		now              time.Time
		reason           string
	}{
		{"valid", "/movies/a b.mp4", e, sig, now, ""},
		{"valid at expiry second", "/movies/a b.mp4", e, sig, now.Add(time.Hour), ""},
		{"expired", "/movies/a b.mp4", e, sig, now.Add(time.Hour + time.Second), "expired"},
		{"other path", "/movies/b.mp4", e, sig, now, "does not match"},
		{"extended expiry", "/movies/a b.mp4", "1800000000", sig, now, "does not match"},
		{"altered sig", "/movies/a b.mp4", e, strings.Repeat("0", 64), now, "does not match"},
		{"short sig", "/movies/a b.mp4", e, sig[:10], now, "malformed signature"},
		{"non-hex sig", "/movies/a b.mp4", e, strings.Repeat("z", 64), now, "malformed signature"},
		{"bad expiry", "/movies/a b.mp4", "soon", sig, now, "malformed expiry"},
		{"missing e", "/movies/a b.mp4", "", sig, now, "required"},
		{"missing s", "/movies/a b.mp4", e, "", now, "required"},
	}
	for _, tt := range tests {
		err := verifySignature(secret, tt.path, tt.e, tt.s, tt.now)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.reason)
		}
	}
	if err := verifySignature("other secret", "/movies/a b.mp4", e, sig, now); err == nil {
		t.Error("another secret's signature verified")
	}
}

func TestSignURL(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	u := SignURL("http://h:9480/", "k", "/movies/a b.mp4", time.Minute, now)
	want := "http://h:9480/movies/a%20b.mp4?" + Sign("k", "/movies/a b.mp4", now.Add(time.Minute))
	if u != want {
		t.Fatalf("SignURL = %q, want %q", u, want)
	}
	d := SignURL("http://h", "k", "/movies/", time.Minute, now)
	if d != "http://h/movies/?"+Sign("k", "/movies", now.Add(time.Minute)) {
		t.Fatalf("dir SignURL = %q", d)
	}
	if r := SignURL("http://h", "k", "/", time.Minute, now); r != "http://h/?"+Sign("k", "/", now.Add(time.Minute)) {
		t.Fatalf("root SignURL = %q", r)
	}
	// Sign cleans like the server: "movies/x" and "/movies/x" sign alike.
	if Sign("k", "movies/x", now) != Sign("k", "/movies/x", now) {
		t.Fatal("Sign does not clean")
	}
}

func TestContentDisposition(t *testing.T) {
	got := contentDisposition(`映画 "1".mp4`)
	want := `attachment; filename="__ _1_.mp4"; filename*=UTF-8''%E6%98%A0%E7%94%BB%20%221%22.mp4`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	_, params, err := mime.ParseMediaType(got)
	if err != nil || params["filename"] != `映画 "1".mp4` {
		t.Fatalf("parsed %v %v", params, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.Listen = "" },
		func(c *Config) { c.Listen = "nohostport" },
		func(c *Config) { c.MaxRanges = 0 },
		func(c *Config) { c.ReadAhead = 0 },
		func(c *Config) { c.PieceSize = 0 },
		func(c *Config) { c.UploadPiece = -1 },
		func(c *Config) { c.ListPage = 0 },
		func(c *Config) { c.StallTimeout = 0 },
		func(c *Config) { c.ShutdownTimeout = -time.Second },
		func(c *Config) { c.Concurrency = 0 },
		func(c *Config) { c.MaxConnsPerIP = -1 },
		func(c *Config) { c.MaxConnsPerIP = c.Concurrency + 1 },
		func(c *Config) { c.MaxRequestBody = 100 },
	}
	for i, mod := range bad {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: %v", i, err)
		}
		if _, err := New(c, newFakeFS()); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: New: %v", i, err)
		}
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("nil fs: %v", err)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
