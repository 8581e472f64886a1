package lockrange

import (
	"slices"
	"testing"
)

func sp(owner string, typ uint32, start, end uint64) Span {
	return Span{Owner: owner, Typ: typ, Start: start, End: end}
}

func TestConflict(t *testing.T) {
	list := []Span{sp("a", Write, 0, 99), sp("b", Read, 100, 199)}
	cases := []struct {
		name string
		want Span
		hit  bool
		by   string
	}{
		{"read inside another's write", sp("c", Read, 50, 60), true, "a"},
		{"write over a read", sp("c", Write, 150, 150), true, "b"},
		{"read over a read", sp("c", Read, 150, 300), false, ""},
		{"an owner never conflicts with itself", sp("a", Write, 0, 99), false, ""},
		{"past every lock", sp("c", Write, 200, MaxOffset), false, ""},
		{"unlock never conflicts", sp("c", Unlock, 0, MaxOffset), false, ""},
		{"adjacent is not overlapping", sp("c", Write, 100, 100), true, "b"},
	}
	for _, c := range cases {
		l, ok := Conflict(list, c.want)
		if ok != c.hit || (ok && l.Owner != c.by) {
			t.Errorf("%s: Conflict = %+v, %v", c.name, l, ok)
		}
	}
}

func TestApply(t *testing.T) {
	cases := []struct {
		name string
		list []Span
		want Span
		out  []Span
	}{
		{"upgrade the middle splits", []Span{sp("a", Read, 0, 99)}, sp("a", Write, 50, 149),
			[]Span{sp("a", Read, 0, 49), sp("a", Write, 50, 149)}},
		{"unlock the middle leaves head and tail", []Span{sp("a", Write, 0, 99)}, sp("a", Unlock, 40, 59),
			[]Span{sp("a", Write, 0, 39), sp("a", Write, 60, 99)}},
		{"touching locks of one type coalesce", []Span{sp("a", Read, 0, 9)}, sp("a", Read, 10, 19),
			[]Span{sp("a", Read, 0, 19)}},
		{"other owners are untouched", []Span{sp("b", Read, 0, 9)}, sp("a", Read, 5, 19),
			[]Span{sp("a", Read, 5, 19), sp("b", Read, 0, 9)}},
		{"unlock everything", []Span{sp("a", Read, 0, 9), sp("a", Write, 20, 29)}, sp("a", Unlock, 0, MaxOffset), []Span{}},
		{"to end of file", []Span{sp("a", Write, 0, MaxOffset)}, sp("a", Unlock, 100, MaxOffset),
			[]Span{sp("a", Write, 0, 99)}},
	}
	for _, c := range cases {
		got := Apply(c.list, c.want)
		if !slices.Equal(got, c.out) {
			t.Errorf("%s: Apply = %+v, want %+v", c.name, got, c.out)
		}
	}
}

func TestRelease(t *testing.T) {
	list := []Span{sp("a", Read, 0, 9), sp("b", Write, 10, 19), sp("a", Write, 30, 39)}
	got, changed := Release(list, "a")
	if !changed || !slices.Equal(got, []Span{sp("b", Write, 10, 19)}) {
		t.Fatalf("Release a = %+v, %v", got, changed)
	}
	if len(list) != 3 {
		t.Fatal("Release changed its input")
	}
	if _, changed := Release(list, "z"); changed {
		t.Fatal("Release of an owner without locks reported a change")
	}
	got, _ = ReleaseIf(list, func(o string) bool { return o == "b" })
	if len(got) != 2 {
		t.Fatalf("ReleaseIf = %+v", got)
	}
	for _, s := range []Span{sp("", Read, 0, 1), sp("a", 7, 0, 1), sp("a", Read, 5, 4)} {
		if s.Valid() {
			t.Errorf("%+v is valid", s)
		}
	}
}
