package httpd

import (
	"slices"
	"strconv"
	"strings"

	"github.com/reelfs/reelfs/internal/byterange"
)

// byteRange is a satisfiable range of a representation: length > 0 bytes
// from start.
type byteRange struct {
	start, length int64
}

// end is the offset of the range's last byte.
func (r byteRange) end() int64 { return r.start + r.length - 1 }

// contentRange is the Content-Range value of r in a representation of
// size bytes.
func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.end(), 10) +
		"/" + strconv.FormatInt(size, 10)
}

// rangeDecision is what a Range header asks of the response.
type rangeDecision int

const (
	// rangeIgnore: no Range header, an unknown unit, invalid syntax or too
	// many ranges. Send the whole representation with 200.
	rangeIgnore rangeDecision = iota
	// rangeServe: send the ranges with 206.
	rangeServe
	// rangeUnsatisfiable: no range overlaps the representation. Send 416
	// with "Content-Range: bytes */SIZE".
	rangeUnsatisfiable
)

func (d rangeDecision) String() string {
	switch d {
	case rangeIgnore:
		return "ignore"
	case rangeServe:
		return "serve"
	case rangeUnsatisfiable:
		return "unsatisfiable"
	}
	return "rangeDecision(" + strconv.Itoa(int(d)) + ")"
}

// parseRange interprets a Range header value for a representation of size
// bytes, following RFC 9110 §14:
//
//   - A unit other than "bytes" (compared without case) is ignored (§14.2:
//     an origin server MUST ignore a unit it does not understand).
//   - A ranges-specifier that breaks the grammar, including a range whose
//     last-pos is below its first-pos ("5-4", §14.1.1: invalid), is ignored
//     as a whole: §14.2 lets a server ignore an invalid Range header, and
//     the client then gets the whole file rather than an error.
//   - More than maxRanges ranges: ignored (the "many small ranges" abuse of
//     §14.2); the client gets the whole file.
//   - Each satisfiable range is clipped to the representation; ranges
//     that are not satisfiable (first-pos >= size, suffix "-0", anything on
//     an empty file) are dropped. When none is left the answer is 416.
//   - When satisfiable ranges overlap, all of them are coalesced into
//     sorted, disjoint ranges (§14.2 allows coalescing), so a response is
//     never longer than the file plus part headers, however the ranges
//     repeat. Ranges that do not overlap keep the order of the request.
//
// Numbers too large for int64 saturate: as a first-pos they are past the
// end, as a last-pos or suffix-length they reach the end. OWS around list
// elements and empty elements ("0-1,,2-3") are accepted, as the list rule of
// RFC 9110 §5.6.1 asks; whitespace inside a range is invalid.
func parseRange(h string, size int64, maxRanges int) ([]byteRange, rangeDecision) {
	h = strings.Trim(h, " \t")
	if h == "" {
		return nil, rangeIgnore
	}
	eq := strings.IndexByte(h, '=')
	if eq < 0 || !strings.EqualFold(h[:eq], "bytes") {
		return nil, rangeIgnore
	}
	var ranges []byteRange
	specs := 0
	for spec := range strings.SplitSeq(h[eq+1:], ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue
		}
		if specs++; specs > maxRanges {
			return nil, rangeIgnore
		}
		r, ok, valid := parseSpec(spec, size)
		if !valid {
			return nil, rangeIgnore
		}
		if ok {
			ranges = append(ranges, r)
		}
	}
	if specs == 0 {
		return nil, rangeIgnore
	}
	if len(ranges) == 0 {
		return nil, rangeUnsatisfiable
	}
	return coalesce(ranges), rangeServe
}

// parseSpec parses one byte-range-spec. valid is false when it breaks the
// grammar; ok is false when it is valid but not satisfiable.
func parseSpec(spec string, size int64) (r byteRange, ok, valid bool) {
	sp, valid := byterange.Parse(spec)
	if !valid {
		return byteRange{}, false, false
	}
	start, n, ok := sp.Resolve(size)
	return byteRange{start: start, length: n}, ok, true
}

// coalesce returns ranges unchanged when no two overlap, else their union
// as sorted disjoint ranges.
func coalesce(ranges []byteRange) []byteRange {
	if len(ranges) < 2 {
		return ranges
	}
	sorted := slices.Clone(ranges)
	slices.SortFunc(sorted, func(a, b byteRange) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	overlap := false
	for i := 1; i < len(sorted); i++ {
		if sorted[i].start <= sorted[i-1].end() {
			overlap = true
			break
		}
	}
	if !overlap {
		return ranges
	}
	out := sorted[:1]
	for _, r := range sorted[1:] {
		last := &out[len(out)-1]
		if r.start <= last.end() {
			if r.end() > last.end() {
				last.length = r.end() - last.start + 1
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// multipartLayout lays out a multipart/byteranges body (RFC 9110 §14.6) as
// literal part headers and file ranges, and returns its total length.
func multipartLayout(ranges []byteRange, size int64, ctype, boundary string) ([]segment, int64) {
	segs := make([]segment, 0, 2*len(ranges)+1)
	var total int64
	for i, r := range ranges {
		var h strings.Builder
		if i > 0 {
			h.WriteString("\r\n")
		}
		h.WriteString("--" + boundary + "\r\n")
		h.WriteString("Content-Type: " + ctype + "\r\n")
		h.WriteString("Content-Range: " + r.contentRange(size) + "\r\n\r\n")
		segs = append(segs, segment{lit: []byte(h.String())}, segment{off: r.start, n: r.length})
		total += int64(h.Len()) + r.length
	}
	tail := "\r\n--" + boundary + "--\r\n"
	segs = append(segs, segment{lit: []byte(tail)})
	return segs, total + int64(len(tail))
}
