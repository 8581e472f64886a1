package httpd

import (
	"errors"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		raw    string
		clean  string
		dir    bool
		reason string // substring of the error; "" for success
	}{
		{"/", "/", true, ""},
		{"/a.mp4", "/a.mp4", false, ""},
		{"/movies/", "/movies", true, ""},
		{"/a%20b/c%2Bd+e.mkv", "/a b/c+d+e.mkv", false, ""},
		{"/%E6%98%A0%E7%94%BB.mp4", "/映画.mp4", false, ""},
		{"/映画.mp4", "/映画.mp4", false, ""},
		{"/a//b", "/a/b", false, ""},
		{"/a/./b/.", "/a/b", true, ""},
		{"/a/%2e/b", "/a/b", false, ""},
		{"/%252e%252e", "/%2e%2e", false, ""}, // decoded once: a name, not ..
		{"/a%5Cb", `/a\b`, false, ""},
		{"/...", "/...", false, ""},
		{"/..a", "/..a", false, ""},

		{"", "", false, "must start with /"},
		{"a/b", "", false, "must start with /"},
		{"*", "", false, "must start with /"},
		{"//x", "", false, "must not start with //"},
		{"//", "", false, "must not start with //"},
		{"/../etc/passwd", "", false, "contains .."},
		{"/a/../b", "", false, "contains .."},
		{"/a/..", "", false, "contains .."},
		{"/%2e%2e/", "", false, "contains .."},
		{"/%2E%2e/etc", "", false, "contains .."},
		{"/.%2e/", "", false, "contains .."},
		{"/a/%2F..%2F", "", false, "encoded slash"},
		{"/a%2fb", "", false, "encoded slash"},
		{`/..\etc`, "", false, "contains .."},
		{"/a/%5C..%5Cb", "", false, "contains .."},
		{"/a%00b", "", false, "NUL"},
		{"/a\x00b", "", false, "NUL"},
		{"/a%", "", false, "truncated percent escape"},
		{"/a%4", "", false, "truncated percent escape"},
		{"/a%zz", "", false, "bad percent escape"},
		{"/" + strings.Repeat("x", 256), "", false, "name longer"},
		{strings.Repeat("/abcdefgh", 600), "", false, "too long"},
	}
	for _, tt := range tests {
		clean, dir, err := cleanPath(tt.raw)
		if tt.reason != "" {
			if err == nil || !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("cleanPath(%q) = %q, %v, %v; want error with %q", tt.raw, clean, dir, err, tt.reason)
			}
			continue
		}
		if err != nil || clean != tt.clean || dir != tt.dir {
			t.Errorf("cleanPath(%q) = %q, %v, %v; want %q, %v", tt.raw, clean, dir, err, tt.clean, tt.dir)
		}
	}
}

func TestEscapePathRoundTrip(t *testing.T) {
	for _, p := range []string{"/", "/a b", "/x/映画 #1?.mp4", "/100%/a+b", `/a\b`, "/semi;colon/=&@:$,"} {
		e := escapePath(p)
		if strings.ContainsAny(e, " ?#%\\") && !strings.Contains(e, "%") {
			t.Errorf("escapePath(%q) = %q left a reserved byte", p, e)
		}
		got, _, err := cleanPath(e)
		if err != nil || got != p {
			t.Errorf("cleanPath(escapePath(%q)=%q) = %q, %v", p, e, got, err)
		}
	}
}

func TestSplitJoin(t *testing.T) {
	for _, tt := range []struct{ p, parent, name string }{
		{"/a", "/", "a"}, {"/a/b", "/a", "b"}, {"/a/b/c.mp4", "/a/b", "c.mp4"},
	} {
		parent, name := splitPath(tt.p)
		if parent != tt.parent || name != tt.name || joinPath(parent, name) != tt.p {
			t.Errorf("splitPath(%q) = %q, %q", tt.p, parent, name)
		}
	}
	if !under("/-/metrics", "/-") || !under("/-", "/-") || under("/-x", "/-") || under("/players", "/player") {
		t.Fatal("under")
	}
}

// FuzzCleanPath: a path cleanPath accepts starts with "/", has no ".."
// segment, no empty segment, no NUL, and is a fixed point of escaping.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/../x", "/%2e%2e/", "/a/%2F..%2F", "//x", "/a%00", "/a/./b//c/", `/..\x`, "/%c3%a9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		clean, _, err := cleanPath(raw)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("cleanPath(%q): error %v is not ErrBadPath", raw, err)
			}
			return
		}
		if !strings.HasPrefix(clean, "/") {
			t.Fatalf("cleanPath(%q) = %q: no leading slash", raw, clean)
		}
		if clean != "/" {
			for _, seg := range strings.Split(clean[1:], "/") {
				if seg == ".." || seg == "." || seg == "" || hasDotDot(seg) {
					t.Fatalf("cleanPath(%q) = %q: bad segment %q", raw, clean, seg)
				}
			}
		}
		if strings.IndexByte(clean, 0) >= 0 {
			t.Fatalf("cleanPath(%q) = %q: NUL", raw, clean)
		}
		again, _, err := cleanPath(escapePath(clean))
		if err != nil || again != clean {
			t.Fatalf("round trip of %q: %q, %v", clean, again, err)
		}
	})
}
