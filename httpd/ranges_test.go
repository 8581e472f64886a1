package httpd

import (
	"io"
	"math"
	"mime"
	"mime/multipart"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 10000
	r := func(start, length int64) byteRange { return byteRange{start, length} }
	tests := []struct {
		name   string
		h      string
		size   int64
		max    int
		want   []byteRange
		decide rangeDecision
	}{
		// RFC 9110 §14.1.2 examples on a 10000-byte representation.
		{"first 500", "bytes=0-499", size, 16, []byteRange{r(0, 500)}, rangeServe},
		{"second 500", "bytes=500-999", size, 16, []byteRange{r(500, 500)}, rangeServe},
		{"final 500 suffix", "bytes=-500", size, 16, []byteRange{r(9500, 500)}, rangeServe},
		{"final 500 open", "bytes=9500-", size, 16, []byteRange{r(9500, 500)}, rangeServe},
		{"first and last byte", "bytes=0-0,-1", size, 16, []byteRange{r(0, 1), r(9999, 1)}, rangeServe},
		{"rfc adjacent example kept apart", "bytes=500-600,601-999", size, 16, []byteRange{r(500, 101), r(601, 399)}, rangeServe},
		{"rfc overlap 500-700,601-999", "bytes=500-700,601-999", size, 16, []byteRange{r(500, 500)}, rangeServe},
		{"0-0", "bytes=0-0", size, 16, []byteRange{r(0, 1)}, rangeServe},
		{"whole via 0-", "bytes=0-", size, 16, []byteRange{r(0, size)}, rangeServe},
		{"last-pos past end clipped", "bytes=9000-20000", size, 16, []byteRange{r(9000, 1000)}, rangeServe},
		{"suffix longer than file", "bytes=-20000", size, 16, []byteRange{r(0, size)}, rangeServe},
		{"last byte exactly", "bytes=9999-9999", size, 16, []byteRange{r(9999, 1)}, rangeServe},

		// Unsatisfiable -> 416.
		{"suffix zero", "bytes=-0", size, 16, nil, rangeUnsatisfiable},
		{"start at size", "bytes=10000-", size, 16, nil, rangeUnsatisfiable},
		{"start past size", "bytes=20000-30000", size, 16, nil, rangeUnsatisfiable},
		{"all unsatisfiable", "bytes=10000-,-0", size, 16, nil, rangeUnsatisfiable},
		{"empty file open", "bytes=0-", 0, 16, nil, rangeUnsatisfiable},
		{"empty file suffix", "bytes=-5", 0, 16, nil, rangeUnsatisfiable},
		{"empty file 0-0", "bytes=0-0", 0, 16, nil, rangeUnsatisfiable},
		{"huge first-pos", "bytes=99999999999999999999999-", size, 16, nil, rangeUnsatisfiable},

		// Some satisfiable: unsatisfiable ones are dropped.
		{"mixed", "bytes=20000-,0-1", size, 16, []byteRange{r(0, 2)}, rangeServe},

		// Huge numbers saturate.
		{"huge last-pos", "bytes=5-99999999999999999999999", size, 16, []byteRange{r(5, 9995)}, rangeServe},
		{"huge suffix", "bytes=-99999999999999999999999", size, 16, []byteRange{r(0, size)}, rangeServe},
		{"maxint64 last", "bytes=0-" + strconv.FormatInt(math.MaxInt64, 10), size, 16, []byteRange{r(0, size)}, rangeServe},

		// Whitespace: OWS around list elements is fine, inside is not.
		{"ows around elements", "bytes= 0-1 ,\t5-6", size, 16, []byteRange{r(0, 2), r(5, 2)}, rangeServe},
		{"empty list elements", "bytes=0-1,,5-6,", size, 16, []byteRange{r(0, 2), r(5, 2)}, rangeServe},
		{"leading and trailing ows", "  bytes=0-1  ", size, 16, []byteRange{r(0, 2)}, rangeServe},
		{"space inside range", "bytes=0 -1", size, 16, nil, rangeIgnore},
		{"space before equals", "bytes =0-1", size, 16, nil, rangeIgnore},

		// Case-insensitive unit.
		{"unit case", "Bytes=0-1", size, 16, []byteRange{r(0, 2)}, rangeServe},

		// Ignored: unknown unit, bad syntax, too many ranges -> 200.
		{"no header", "", size, 16, nil, rangeIgnore},
		{"unknown unit", "items=0-1", size, 16, nil, rangeIgnore},
		{"no equals", "bytes", size, 16, nil, rangeIgnore},
		{"empty set", "bytes=", size, 16, nil, rangeIgnore},
		{"only commas", "bytes=,,", size, 16, nil, rangeIgnore},
		{"last before first", "bytes=5-4", size, 16, nil, rangeIgnore},
		{"one invalid among valid", "bytes=0-1,5-4", size, 16, nil, rangeIgnore},
		{"no dash", "bytes=5", size, 16, nil, rangeIgnore},
		{"lone dash", "bytes=-", size, 16, nil, rangeIgnore},
		{"negative", "bytes=--5", size, 16, nil, rangeIgnore},
		{"letters", "bytes=a-b", size, 16, nil, rangeIgnore},
		{"plus sign", "bytes=+1-2", size, 16, nil, rangeIgnore},
		{"hex", "bytes=0x10-20", size, 16, nil, rangeIgnore},
		{"two dashes", "bytes=1-2-3", size, 16, nil, rangeIgnore},
		{"too many ranges", "bytes=0-0,2-2,4-4", size, 2, nil, rangeIgnore},
		{"exactly max ranges", "bytes=0-0,2-2", size, 2, []byteRange{r(0, 1), r(2, 1)}, rangeServe},
		{"invalid on empty file", "bytes=5-4", 0, 16, nil, rangeIgnore},

		// Overlap abuse is coalesced into disjoint sorted ranges.
		{"same range repeated", "bytes=0-999,0-999,0-999", size, 16, []byteRange{r(0, 1000)}, rangeServe},
		{"nested", "bytes=0-9999,100-200", size, 16, []byteRange{r(0, size)}, rangeServe},
		{"overlap reorders", "bytes=5000-5999,0-99,5500-6999", size, 16, []byteRange{r(0, 100), r(5000, 2000)}, rangeServe},
		{"disjoint keep order", "bytes=5000-5999,0-99", size, 16, []byteRange{r(5000, 1000), r(0, 100)}, rangeServe},
		{"adjacent stay apart", "bytes=0-4,5-9", size, 16, []byteRange{r(0, 5), r(5, 5)}, rangeServe},
		{"suffix overlapping open", "bytes=-100,9950-", size, 16, []byteRange{r(9900, 100)}, rangeServe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := parseRange(tt.h, tt.size, tt.max)
			if d != tt.decide || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseRange(%q, %d) = %v, %v; want %v, %v", tt.h, tt.size, got, d, tt.want, tt.decide)
			}
		})
	}
}

func TestContentRange(t *testing.T) {
	if got := (byteRange{0, 500}).contentRange(10000); got != "bytes 0-499/10000" {
		t.Fatal(got)
	}
	if got := (byteRange{9999, 1}).contentRange(10000); got != "bytes 9999-9999/10000" {
		t.Fatal(got)
	}
}

// TestMultipartLayout checks the laid-out body with the standard
// multipart reader and the declared length against the real one.
func TestMultipartLayout(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 10))
	ranges := []byteRange{{0, 5}, {50, 10}, {99, 1}}
	segs, total := multipartLayout(ranges, int64(len(data)), "video/mp4", "BOUNDARY")
	var body []byte
	for _, s := range segs {
		if s.lit != nil {
			body = append(body, s.lit...)
		} else {
			body = append(body, data[s.off:s.off+s.n]...)
		}
	}
	if int64(len(body)) != total {
		t.Fatalf("declared %d bytes, laid out %d", total, len(body))
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), "BOUNDARY")
	for i, r := range ranges {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != "video/mp4" {
			t.Errorf("part %d type %q", i, ct)
		}
		if cr := p.Header.Get("Content-Range"); cr != r.contentRange(100) {
			t.Errorf("part %d range %q", i, cr)
		}
		got, _ := io.ReadAll(p)
		if string(got) != string(data[r.start:r.start+r.length]) {
			t.Errorf("part %d = %q", i, got)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("after last part: %v", err)
	}
	if _, params, err := mime.ParseMediaType("multipart/byteranges; boundary=BOUNDARY"); err != nil || params["boundary"] != "BOUNDARY" {
		t.Fatal(err)
	}
}

// FuzzParseRange checks invariants on any header and size: served ranges
// lie inside the file, are non-empty, never more than the limit, and
// coalesced ranges never overlap.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-0", "bytes=5-4", "bytes=0-1,1-2,-3", "items=0-1",
		"bytes= 1-2 , 3-", "bytes=99999999999999999999-", "bytes=0-,0-,0-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		ranges, d := parseRange(h, size, 8)
		switch d {
		case rangeServe:
			if len(ranges) == 0 || len(ranges) > 8 {
				t.Fatalf("%q: %d ranges", h, len(ranges))
			}
			var sum int64
			for _, r := range ranges {
				if r.length <= 0 || r.start < 0 || r.end() >= size {
					t.Fatalf("%q size %d: bad range %+v", h, size, r)
				}
				sum += r.length
			}
			if coalesced := coalesce(ranges); len(coalesced) == len(ranges) && sum > size {
				t.Fatalf("%q size %d: %d bytes of ranges without overlap", h, size, sum)
			}
		case rangeIgnore, rangeUnsatisfiable:
			if ranges != nil {
				t.Fatalf("%q: ranges %v with decision %v", h, ranges, d)
			}
		default:
			t.Fatalf("decision %v", d)
		}
	})
}
