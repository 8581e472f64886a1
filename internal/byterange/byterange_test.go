package byterange

import (
	"math"
	"testing"
)

func TestParseResolve(t *testing.T) {
	const size = 1000
	cases := []struct {
		spec   string
		valid  bool
		ok     bool
		off, n int64
	}{
		{"0-0", true, true, 0, 1},
		{"0-9", true, true, 0, 10},
		{"10-", true, true, 10, 990},
		{"-10", true, true, 990, 10},
		{"-5000", true, true, 0, 1000},
		{"0-1000", true, true, 0, 1000},
		{"500-99999999999999999999999", true, true, 500, 500},
		{"1000-", true, false, 0, 0},
		{"-0", true, false, 0, 0},
		{"99999999999999999999-", true, false, 0, 0},
		{"", false, false, 0, 0},
		{"-", false, false, 0, 0},
		{"5-4", false, false, 0, 0},
		{"a-b", false, false, 0, 0},
		{"1 - 2", false, false, 0, 0},
		{"-1-2", false, false, 0, 0},
		{"1--2", false, false, 0, 0},
		{"+1-2", false, false, 0, 0},
	}
	for _, c := range cases {
		sp, valid := Parse(c.spec)
		if valid != c.valid {
			t.Errorf("%q: valid %v, want %v", c.spec, valid, c.valid)
			continue
		}
		if !valid {
			continue
		}
		off, n, ok := sp.Resolve(size)
		if ok != c.ok || off != c.off || n != c.n {
			t.Errorf("%q: %d+%d ok=%v, want %d+%d ok=%v", c.spec, off, n, ok, c.off, c.n, c.ok)
		}
	}
	if _, _, ok := (Spec{First: -1, Last: -1, Suffix: 5}).Resolve(0); ok {
		t.Error("a suffix of an empty representation resolved")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0-9", "10-", "-10", "5-4", "-0", "99999999999999999999-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 || size > math.MaxInt64/2 {
			return
		}
		sp, valid := Parse(s)
		if !valid {
			return
		}
		if off, n, ok := sp.Resolve(size); ok && (off < 0 || n < 1 || off+n > size) {
			t.Fatalf("%q on %d bytes: %d+%d", s, size, off, n)
		}
	})
}
