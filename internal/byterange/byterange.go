// Package byterange parses one byte-range-spec of an HTTP Range header
// (RFC 9110 14.1.1), the grammar the chunkserver and httpd share.
package byterange

import "math"

// Spec is one byte-range-spec: "first-last", "first-" (Last < 0) or
// "-suffix" (First < 0).
type Spec struct {
	First  int64 // -1 for a suffix range
	Last   int64 // inclusive; -1 when open-ended
	Suffix int64 // length of a suffix range
}

// Parse parses one byte-range-spec, without the "bytes=" unit and without
// surrounding white space. ok is false when s breaks the grammar, which
// includes a last byte before the first. Positions past the largest int64
// saturate, which Resolve then treats as past the end.
func Parse(s string) (Spec, bool) {
	dash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			dash = i
			break
		}
	}
	if dash < 0 {
		return Spec{}, false
	}
	if dash == 0 {
		n, ok := digits(s[1:])
		return Spec{First: -1, Last: -1, Suffix: n}, ok
	}
	first, ok := digits(s[:dash])
	if !ok {
		return Spec{}, false
	}
	if dash == len(s)-1 {
		return Spec{First: first, Last: -1}, true
	}
	last, ok := digits(s[dash+1:])
	if !ok || last < first {
		return Spec{}, false
	}
	return Spec{First: first, Last: last}, true
}

// Resolve returns the offset and length of the bytes the spec names in a
// representation of size bytes; ok is false when it names none (a suffix
// of 0, anything of an empty representation, a first byte past the end).
func (r Spec) Resolve(size int64) (off, n int64, ok bool) {
	if r.First < 0 {
		if r.Suffix == 0 || size == 0 {
			return 0, 0, false
		}
		n = min(r.Suffix, size)
		return size - n, n, true
	}
	if r.First >= size {
		return 0, 0, false
	}
	last := r.Last
	if last < 0 || last >= size {
		last = size - 1
	}
	return r.First, last - r.First + 1, true
}

// digits parses 1*DIGIT, saturating at math.MaxInt64.
func digits(s string) (int64, bool) {
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
