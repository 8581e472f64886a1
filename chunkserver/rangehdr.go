package chunkserver

import (
	"fmt"
	"math"
	"strings"

	"github.com/reelfs/reelfs/internal/wire"
)

// rangeSpec is the one byte range of a Range header (RFC 9110 14.1.1):
// "bytes=first-last", "bytes=first-" or "bytes=-suffix".
type rangeSpec struct {
	first  int64 // -1 for a suffix range
	last   int64 // -1 when open-ended; inclusive otherwise
	suffix int64 // length of a suffix range
}

// parseRange parses a Range header value holding one byte range. Syntax
// errors and several ranges are EINVAL. Positions past the largest int64
// saturate, which resolve then treats as past the end of any block.
func parseRange(h string) (rangeSpec, error) {
	bad := func(why string) (rangeSpec, error) {
		shown := h
		if len(shown) > 64 {
			shown = shown[:64] + "..."
		}
		return rangeSpec{}, wire.Errorf(wire.ErrInvalid, "chunkserver: Range %q: %s", shown, why)
	}
	v := strings.Trim(h, " \t")
	unit, set, ok := strings.Cut(v, "=")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return bad("want bytes=first-last")
	}
	if strings.Contains(set, ",") {
		return bad("multiple ranges are not supported")
	}
	set = strings.Trim(set, " \t")
	a, b, ok := strings.Cut(set, "-")
	if !ok {
		return bad("missing '-'")
	}
	if a == "" {
		n, ok := parseDigits(b)
		if !ok {
			return bad("suffix length is not a number")
		}
		return rangeSpec{first: -1, last: -1, suffix: n}, nil
	}
	first, ok := parseDigits(a)
	if !ok {
		return bad("first byte is not a number")
	}
	if b == "" {
		return rangeSpec{first: first, last: -1}, nil
	}
	last, ok := parseDigits(b)
	if !ok {
		return bad("last byte is not a number")
	}
	if last < first {
		return bad("last byte before first byte")
	}
	return rangeSpec{first: first, last: last}, nil
}

// parseDigits parses a non-empty string of ASCII digits, saturating at
// math.MaxInt64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			v = math.MaxInt64
			continue
		}
		v = v*10 + d
	}
	return v, true
}

// resolve turns the range into offset and length within a block of size
// bytes, or ErrUnsatisfiable when it names no byte of it.
func (r rangeSpec) resolve(size int64) (off, n int64, err error) {
	if r.first < 0 {
		if r.suffix == 0 || size == 0 {
			return 0, 0, fmt.Errorf("%w: suffix of %d bytes of a %d-byte block", ErrUnsatisfiable, r.suffix, size)
		}
		n = min(r.suffix, size)
		return size - n, n, nil
	}
	if r.first >= size {
		return 0, 0, fmt.Errorf("%w: first byte %d of a %d-byte block", ErrUnsatisfiable, r.first, size)
	}
	last := r.last
	if last < 0 || last >= size {
		last = size - 1
	}
	return r.first, last - r.first + 1, nil
}
