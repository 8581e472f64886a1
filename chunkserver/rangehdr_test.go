package chunkserver

import (
	"errors"
	"math"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	ok := []struct {
		h      string
		off, n int64
	}{
		{"bytes=0-0", 0, 1},
		{"bytes=0-9", 0, 10},
		{"bytes=10-", 10, 990},
		{"bytes=999-", 999, 1},
		{"bytes=-1", 999, 1},
		{"bytes=-10", 990, 10},
		{"bytes=-5000", 0, 1000},
		{"bytes=500-99999999999999999999999", 500, 500},
		{"bytes=0-999", 0, 1000},
		{"bytes=0-1000", 0, 1000},
		{"Bytes=1-2", 1, 2},
		{" bytes=3-4 ", 3, 2},
		{"bytes= 5-6", 5, 2},
	}
	for _, c := range ok {
		spec, err := parseRange(c.h)
		if err != nil {
			t.Errorf("%q: %v", c.h, err)
			continue
		}
		off, n, err := spec.resolve(size)
		if err != nil || off != c.off || n != c.n {
			t.Errorf("%q: got %d+%d (%v), want %d+%d", c.h, off, n, err, c.off, c.n)
		}
	}
	unsat := []string{"bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=99999999999999999999-"}
	for _, h := range unsat {
		spec, err := parseRange(h)
		if err != nil {
			t.Errorf("%q: parse: %v", h, err)
			continue
		}
		if _, _, err := spec.resolve(size); !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("%q: err %v, want ErrUnsatisfiable", h, err)
		}
	}
	if spec, err := parseRange("bytes=-5"); err != nil {
		t.Fatal(err)
	} else if _, _, err := spec.resolve(0); !errors.Is(err, ErrUnsatisfiable) {
		t.Errorf("suffix of an empty block: err %v", err)
	}
	invalid := []string{"", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-4", "bytes=0-1,2-3", "bytes=0-1,",
		"items=0-1", "bytes=0x1-2", "bytes=+1-2", "bytes=1--2", "bytes=-1-2", "bytes=1 - 2", "bytes=0-1\x00"}
	for _, h := range invalid {
		if _, err := parseRange(h); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("%q: err %v, want EINVAL", h, err)
		}
	}
}

// FuzzParseRange checks that any header either fails cleanly or resolves
// to a range inside the block.
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-9", "bytes=10-", "bytes=-10", "bytes=0-1,2-3", "bytes=5-4", "junk", "bytes=-0", "bytes=99999999999999999999-"} {
		f.Add(h, int64(1000))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 || size > math.MaxInt64/2 {
			return
		}
		spec, err := parseRange(h)
		if err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("parse error %v is not EINVAL", err)
			}
			return
		}
		off, n, err := spec.resolve(size)
		if err != nil {
			if !errors.Is(err, ErrUnsatisfiable) {
				t.Fatalf("resolve error %v is not ErrUnsatisfiable", err)
			}
			return
		}
		if off < 0 || n < 1 || off+n > size {
			t.Fatalf("%q on %d bytes: %d+%d", h, size, off, n)
		}
	})
}
