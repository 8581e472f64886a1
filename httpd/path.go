package httpd

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/reelfs/reelfs/internal/wire"
)

// maxPathLen bounds a decoded request path (PATH_MAX of Linux).
const maxPathLen = 4096

// Reserved path prefixes: the server's own endpoints and the player page.
// A stored file under /-/ is not reachable over HTTP; one under /player/ is
// reachable only as /player/player/... through the player page.
const (
	reservedPrefix = "/-"
	playerPrefix   = "/player"
)

// cleanPath turns the raw (still percent-encoded) path of a request line
// into the clean absolute path it names. Each "/"-separated segment is
// decoded exactly once, so "%252e" names a file called "%2e", never "..".
// Empty and "." segments are dropped; dir reports a trailing slash (or a
// final "."), which asks for a directory. It refuses, with ErrBadPath and
// a reason:
//   - a path that does not start with "/", or starts with "//" (which a
//     browser or proxy reads as a host name);
//   - a ".." segment, also when written "%2e%2e" or hidden behind a
//     backslash ("..\\x": Windows clients treat "\" as a separator);
//   - an encoded slash ("%2F") or a NUL anywhere;
//   - a malformed percent escape, a name longer than wire.MaxNameLen, or a
//     path longer than 4096 bytes.
func cleanPath(raw string) (clean string, dir bool, err error) {
	switch {
	case raw == "" || raw[0] != '/':
		return "", false, fmt.Errorf("%w: path must start with /", ErrBadPath)
	case strings.HasPrefix(raw, "//"):
		return "", false, fmt.Errorf("%w: path must not start with //", ErrBadPath)
	case len(raw) > 3*maxPathLen:
		return "", false, fmt.Errorf("%w: path too long", ErrBadPath)
	}
	var b strings.Builder
	segs := strings.Split(raw[1:], "/")
	for i, seg := range segs {
		last := i == len(segs)-1
		name, err := unescape(seg)
		if err != nil {
			return "", false, err
		}
		switch {
		case strings.IndexByte(name, 0) >= 0:
			return "", false, fmt.Errorf("%w: NUL in path", ErrBadPath)
		case strings.IndexByte(name, '/') >= 0:
			return "", false, fmt.Errorf("%w: encoded slash in path", ErrBadPath)
		case hasDotDot(name):
			return "", false, fmt.Errorf("%w: path contains ..", ErrBadPath)
		case name == "" || name == ".":
			if last {
				dir = true
			}
			continue
		case len(name) > wire.MaxNameLen:
			return "", false, fmt.Errorf("%w: name longer than %d bytes", ErrBadPath, wire.MaxNameLen)
		}
		b.WriteByte('/')
		b.WriteString(name)
		if b.Len() > maxPathLen {
			return "", false, fmt.Errorf("%w: path too long", ErrBadPath)
		}
	}
	if b.Len() == 0 {
		return "/", true, nil
	}
	return b.String(), dir, nil
}

// hasDotDot reports whether name is ".." or holds a ".." part when "\" is
// read as a separator.
func hasDotDot(name string) bool {
	for part := range strings.SplitSeq(name, `\`) {
		if part == ".." {
			return true
		}
	}
	return false
}

// unescape decodes %XX escapes once. "+" stays a plus: this is a path, not
// a form.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated percent escape", ErrBadPath)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad percent escape %q", ErrBadPath, s[i:i+3])
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// escapePath percent-encodes each segment of a clean path for use in a URL
// or a Location header; cleanPath decodes it back to the same path.
func escapePath(p string) string {
	if p == "/" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// joinPath appends name to directory path dir.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// splitPath returns the parent directory and the last name of a clean
// path other than "/".
func splitPath(p string) (parent, name string) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/", p[i+1:]
	}
	return p[:i], p[i+1:]
}

// under reports whether clean path p lies under prefix ("/-" or
// "/player").
func under(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
