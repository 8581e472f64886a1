package chunkserver

import (
	"fmt"
	"strings"

	"github.com/reelfs/reelfs/internal/byterange"
	"github.com/reelfs/reelfs/internal/wire"
)

// rangeSpec is the one byte range of a Range header (RFC 9110 14.1.1):
// "bytes=first-last", "bytes=first-" or "bytes=-suffix".
type rangeSpec struct{ byterange.Spec }

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
	spec, ok := byterange.Parse(strings.Trim(set, " \t"))
	if !ok {
		return bad("want first-last, first- or -suffix with first <= last")
	}
	return rangeSpec{spec}, nil
}

// resolve turns the range into offset and length within a block of size
// bytes, or ErrUnsatisfiable when it names no byte of it.
func (r rangeSpec) resolve(size int64) (off, n int64, err error) {
	off, n, ok := r.Resolve(size)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s of a %d-byte block", ErrUnsatisfiable, r, size)
	}
	return off, n, nil
}

// String shows the range as it was asked for.
func (r rangeSpec) String() string {
	switch {
	case r.First < 0:
		return fmt.Sprintf("suffix of %d bytes", r.Suffix)
	case r.Last < 0:
		return fmt.Sprintf("bytes %d-", r.First)
	}
	return fmt.Sprintf("bytes %d-%d", r.First, r.Last)
}
