package httpd

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// etagOf is the strong entity tag of an inode's content: its number and
// version in hex. Version changes on every data change, and inode numbers
// are never reused, so equal tags mean equal bytes.
func etagOf(a wire.Attr) string {
	return `"` + strconv.FormatUint(a.Ino, 16) + "-" + strconv.FormatUint(a.Version, 16) + `"`
}

// lastModified is the Last-Modified time of an inode, in whole seconds as
// HTTP dates carry them, and never after now (RFC 9110 §8.8.2.1: a server
// MUST NOT send a Last-Modified later than its Date).
func lastModified(a wire.Attr, now time.Time) time.Time {
	t := time.Unix(0, a.Mtime).UTC().Truncate(time.Second)
	if n := now.UTC().Truncate(time.Second); t.After(n) {
		return n
	}
	return t
}

// validators describe the selected representation for conditional
// requests. exists is false when the target has none yet (a PUT creating a
// file): then no entity tag matches and dates are ignored.
type validators struct {
	exists  bool
	etag    string    // strong tag with quotes
	modTime time.Time // whole seconds
}

// condHeaders are the request's conditional header fields, raw.
type condHeaders struct {
	ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince, ifRange string
}

// checkPreconditions evaluates the preconditions of a request in the order
// of RFC 9110 §13.2.2 and returns 0 to go on, 304 (Not Modified) or 412
// (Precondition Failed):
//
//  1. If-Match present: false -> 412.
//  2. Else If-Unmodified-Since present (a valid date, the target exists):
//     modified after it -> 412.
//  3. If-None-Match present: true -> 304 for GET/HEAD, 412 otherwise.
//  4. Else If-Modified-Since present, GET or HEAD (a valid date, the
//     target exists): not modified after it -> 304.
//
// Step 5, If-Range, is ifRangeHolds; it only decides whether Range applies.
func checkPreconditions(method string, h condHeaders, v validators) int {
	getOrHead := method == "GET" || method == "HEAD"
	if h.ifMatch != "" {
		if !matchETags(h.ifMatch, v, true) {
			return http.StatusPreconditionFailed
		}
	} else if h.ifUnmodifiedSince != "" && v.exists {
		if t, err := http.ParseTime(h.ifUnmodifiedSince); err == nil && v.modTime.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if h.ifNoneMatch != "" {
		if matchETags(h.ifNoneMatch, v, false) {
			if getOrHead {
				return http.StatusNotModified
			}
			return http.StatusPreconditionFailed
		}
	} else if h.ifModifiedSince != "" && getOrHead && v.exists {
		if t, err := http.ParseTime(h.ifModifiedSince); err == nil && !v.modTime.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// ifRangeHolds evaluates If-Range (RFC 9110 §13.1.5): an entity tag must
// match strongly, a date must equal Last-Modified exactly. Anything else,
// a weak tag or a malformed value included, is false: send the whole file.
func ifRangeHolds(h condHeaders, v validators) bool {
	ir := strings.Trim(h.ifRange, " \t")
	if ir == "" {
		return true
	}
	if !v.exists {
		return false
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		tag, weak, rest, ok := scanETag(ir)
		return ok && !weak && strings.Trim(rest, " \t") == "" && tag == v.etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && t.Equal(v.modTime)
}

// matchETags reports whether the If-Match (strong comparison) or
// If-None-Match (weak comparison) list matches the representation. "*"
// matches any existing representation. A malformed list matches nothing
// from the point where it breaks.
func matchETags(list string, v validators, strong bool) bool {
	if !v.exists {
		return false
	}
	s := list
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return false
		}
		if s[0] == ',' {
			s = s[1:]
			continue
		}
		if s[0] == '*' {
			return true
		}
		tag, weak, rest, ok := scanETag(s)
		if !ok {
			return false
		}
		if tag == v.etag && (!strong || !weak) {
			return true
		}
		s = rest
	}
}

// scanETag reads one entity-tag (RFC 9110 §8.8.3) from the start of s: the
// opaque tag with its quotes, whether it was weak, and the rest of s.
func scanETag(s string) (tag string, weak bool, rest string, ok bool) {
	if strings.HasPrefix(s, "W/") {
		weak = true
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return "", false, "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return s[:i+1], weak, s[i+1:], true
		case c == 0x21 || c >= 0x23 && c <= 0x7e || c >= 0x80:
		default:
			return "", false, "", false
		}
	}
	return "", false, "", false
}
