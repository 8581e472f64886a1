package httpd

import (
	"net/http"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestETagAndLastModified(t *testing.T) {
	a := wire.Attr{Ino: 0x1a, Version: 3, Mtime: time.Date(2024, 5, 6, 7, 8, 9, 999, time.UTC).UnixNano()}
	if got := etagOf(a); got != `"1a-3"` {
		t.Fatalf("etag %s", got)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := lastModified(a, now); !got.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Fatalf("last-modified %v", got)
	}
	future := wire.Attr{Mtime: now.Add(time.Hour).UnixNano()}
	if got := lastModified(future, now); !got.Equal(now) {
		t.Fatalf("future mtime gave %v, want now", got)
	}
}

func TestCheckPreconditions(t *testing.T) {
	mod := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	v := validators{exists: true, etag: `"1a-3"`, modTime: mod}
	missing := validators{}
	date := func(t time.Time) string { return t.Format(http.TimeFormat) }
	before, after := date(mod.Add(-time.Hour)), date(mod.Add(time.Hour))
	at := date(mod)
	tests := []struct {
		name   string
		method string
		h      condHeaders
		v      validators
		want   int
	}{
		{"none", "GET", condHeaders{}, v, 0},

		// Step 1: If-Match, strong comparison.
		{"if-match equal", "GET", condHeaders{ifMatch: `"1a-3"`}, v, 0},
		{"if-match in list", "GET", condHeaders{ifMatch: `"x", "1a-3"`}, v, 0},
		{"if-match other", "GET", condHeaders{ifMatch: `"1a-2"`}, v, 412},
		{"if-match weak never matches", "GET", condHeaders{ifMatch: `W/"1a-3"`}, v, 412},
		{"if-match star", "GET", condHeaders{ifMatch: "*"}, v, 0},
		{"if-match star missing", "PUT", condHeaders{ifMatch: "*"}, missing, 412},
		{"if-match malformed", "GET", condHeaders{ifMatch: `1a-3`}, v, 412},
		{"if-match wins over ius", "GET", condHeaders{ifMatch: `"1a-3"`, ifUnmodifiedSince: before}, v, 0},

		// Step 2: If-Unmodified-Since, only without If-Match.
		{"ius before mod", "GET", condHeaders{ifUnmodifiedSince: before}, v, 412},
		{"ius at mod", "GET", condHeaders{ifUnmodifiedSince: at}, v, 0},
		{"ius after mod", "DELETE", condHeaders{ifUnmodifiedSince: after}, v, 0},
		{"ius invalid date ignored", "GET", condHeaders{ifUnmodifiedSince: "yesterday"}, v, 0},
		{"ius missing target ignored", "PUT", condHeaders{ifUnmodifiedSince: before}, missing, 0},
		{"ius rfc850 date", "GET", condHeaders{ifUnmodifiedSince: mod.Add(-time.Hour).Format(time.RFC850)}, v, 412},
		{"ius asctime date", "GET", condHeaders{ifUnmodifiedSince: mod.Add(-time.Hour).Format(time.ANSIC)}, v, 412},

		// Step 3: If-None-Match, weak comparison.
		{"inm equal get", "GET", condHeaders{ifNoneMatch: `"1a-3"`}, v, 304},
		{"inm equal head", "HEAD", condHeaders{ifNoneMatch: `"1a-3"`}, v, 304},
		{"inm weak matches", "GET", condHeaders{ifNoneMatch: `W/"1a-3"`}, v, 304},
		{"inm list", "GET", condHeaders{ifNoneMatch: `"a", W/"b",  "1a-3"`}, v, 304},
		{"inm other", "GET", condHeaders{ifNoneMatch: `"1a-2"`}, v, 0},
		{"inm star", "GET", condHeaders{ifNoneMatch: "*"}, v, 304},
		{"inm star put existing", "PUT", condHeaders{ifNoneMatch: "*"}, v, 412},
		{"inm star put missing", "PUT", condHeaders{ifNoneMatch: "*"}, missing, 0},
		{"inm match delete", "DELETE", condHeaders{ifNoneMatch: `"1a-3"`}, v, 412},
		{"inm malformed", "GET", condHeaders{ifNoneMatch: `1a-3`}, v, 0},
		{"if-match passes then inm", "GET", condHeaders{ifMatch: `"1a-3"`, ifNoneMatch: `"1a-3"`}, v, 304},
		{"if-match fails first", "GET", condHeaders{ifMatch: `"zz"`, ifNoneMatch: `"1a-3"`}, v, 412},

		// Step 4: If-Modified-Since, GET/HEAD, only without If-None-Match.
		{"ims at mod", "GET", condHeaders{ifModifiedSince: at}, v, 304},
		{"ims after mod", "HEAD", condHeaders{ifModifiedSince: after}, v, 304},
		{"ims before mod", "GET", condHeaders{ifModifiedSince: before}, v, 0},
		{"ims ignored with inm", "GET", condHeaders{ifNoneMatch: `"other"`, ifModifiedSince: after}, v, 0},
		{"ims ignored for put", "PUT", condHeaders{ifModifiedSince: after}, v, 0},
		{"ims invalid", "GET", condHeaders{ifModifiedSince: "garbage"}, v, 0},
		{"ius fails before ims", "GET", condHeaders{ifUnmodifiedSince: before, ifModifiedSince: after}, v, 412},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkPreconditions(tt.method, tt.h, tt.v); got != tt.want {
				t.Fatalf("checkPreconditions(%s, %+v) = %d, want %d", tt.method, tt.h, got, tt.want)
			}
		})
	}
}

func TestIfRange(t *testing.T) {
	mod := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	v := validators{exists: true, etag: `"1a-3"`, modTime: mod}
	tests := []struct {
		ifRange string
		want    bool
	}{
		{"", true},
		{`"1a-3"`, true},
		{` "1a-3" `, true},
		{`"1a-2"`, false},
		{`W/"1a-3"`, false}, // weak tags never match in If-Range
		{`"1a-3", "x"`, false},
		{`"1a-3`, false},
		{mod.Format(http.TimeFormat), true},
		{mod.Add(time.Second).Format(http.TimeFormat), false},
		{mod.Add(-time.Second).Format(http.TimeFormat), false},
		{"not a date", false},
	}
	for _, tt := range tests {
		if got := ifRangeHolds(condHeaders{ifRange: tt.ifRange}, v); got != tt.want {
			t.Errorf("If-Range %q = %v, want %v", tt.ifRange, got, tt.want)
		}
	}
}

func TestScanETag(t *testing.T) {
	tests := []struct {
		in       string
		tag      string
		weak, ok bool
		rest     string
	}{
		{`"a"`, `"a"`, false, true, ""},
		{`W/"a", "b"`, `"a"`, true, true, `, "b"`},
		{`""`, `""`, false, true, ""},
		{`"a b"`, "", false, false, ""}, // space is not an etagc
		{`"a`, "", false, false, ""},
		{`w/"a"`, "", false, false, ""},
		{"\"\x80\"", "\"\x80\"", false, true, ""},
	}
	for _, tt := range tests {
		tag, weak, rest, ok := scanETag(tt.in)
		if tag != tt.tag || weak != tt.weak || ok != tt.ok || rest != tt.rest {
			t.Errorf("scanETag(%q) = %q %v %q %v", tt.in, tag, weak, rest, ok)
		}
	}
}
