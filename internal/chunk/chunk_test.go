package chunk

import (
	"errors"
	"math/rand"
	"slices"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// cell is what the model knows of one byte of a chunk: which block and
// which byte of it, or zero (id 0).
type cell struct {
	id  uint64
	off uint32
}

// model is an in-memory chunk that records every byte's origin.
type model struct {
	cells []cell
	size  uint32
}

func (m *model) write(s wire.Slice) {
	for i := uint32(0); i < s.Len; i++ {
		m.cells[s.Pos+i] = cell{}
		if s.ID != 0 {
			m.cells[s.Pos+i] = cell{s.ID, s.Off + i}
		}
	}
	m.size = max(m.size, s.Pos+s.Len)
}

func (m *model) truncate(size uint32) {
	for i := size; i < uint32(len(m.cells)); i++ {
		m.cells[i] = cell{}
	}
	m.size = size
}

// check compares Resolve over [a, b) with the model and checks that the
// pieces tile the range exactly.
func check(t *testing.T, list []wire.Slice, m *model, a, b uint32) {
	t.Helper()
	pieces := Resolve(list, a, b)
	at := a
	for _, p := range pieces {
		if p.Pos != at || p.Len == 0 {
			t.Fatalf("pieces do not tile [%d,%d): %+v", a, b, pieces)
		}
		for i := uint32(0); i < p.Len; i++ {
			want := m.cells[p.Pos+i]
			got := cell{}
			if p.ID != 0 {
				got = cell{p.ID, p.Off + i}
			}
			if got != want {
				t.Fatalf("byte %d: got %+v want %+v (pieces %+v, list %+v)", p.Pos+i, got, want, pieces, list)
			}
		}
		at = p.End()
	}
	if at != b && !(a == b && len(pieces) == 0) {
		t.Fatalf("pieces end at %d, want %d", at, b)
	}
}

func referenced(list []wire.Slice) map[uint64]bool {
	r := map[uint64]bool{}
	for _, s := range list {
		r[s.ID] = true
	}
	return r
}

// TestResolveAgainstModel runs thousands of random overwrite and truncate
// sequences and checks every resolution, compaction and encoding against a
// byte-level model.
func TestResolveAgainstModel(t *testing.T) {
	const space = 512 // a small chunk keeps the model cheap; logic is size-free
	rng := rand.New(rand.NewSource(1))
	seqs := 3000
	if testing.Short() {
		seqs = 500
	}
	for seq := 0; seq < seqs; seq++ {
		m := &model{cells: make([]cell, space)}
		var list []wire.Slice
		nextID := uint64(1)
		live := map[uint64]bool{} // ids ever written and not yet dropped
		for op := 0; op < 1+rng.Intn(40); op++ {
			if rng.Intn(6) == 0 {
				size := uint32(rng.Intn(space))
				var dropped []uint64
				list, dropped = Truncate(list, size)
				m.truncate(size)
				for _, id := range dropped {
					if referenced(list)[id] {
						t.Fatalf("truncate dropped id %d still referenced", id)
					}
					delete(live, id)
				}
			} else {
				pos := uint32(rng.Intn(space))
				l := 1 + uint32(rng.Intn(space-int(pos)))
				blk := l + uint32(rng.Intn(64))
				off := uint32(rng.Intn(int(blk - l + 1)))
				s := wire.Slice{Pos: pos, Len: l, ID: nextID, Group: 1, Off: off, Size: blk}
				if rng.Intn(10) == 0 {
					s = wire.Slice{Pos: pos, Len: l} // an explicit hole
				} else {
					live[nextID] = true
					nextID++
				}
				if err := Check(s); err != nil {
					t.Fatalf("generated a bad slice: %v", err)
				}
				list = append(list, s)
				m.write(s)
			}
			if rng.Intn(2) == 0 {
				before := Resolve(list, 0, space)
				var dropped []uint64
				list, dropped = Compact(list)
				if after := Resolve(list, 0, space); !slices.Equal(before, after) {
					t.Fatalf("compaction changed the content:\n%+v\n%+v", before, after)
				}
				ref := referenced(list)
				for _, id := range dropped {
					if ref[id] {
						t.Fatalf("compaction dropped id %d still referenced", id)
					}
					delete(live, id)
				}
			}
			check(t, list, m, 0, space)
			a := uint32(rng.Intn(space))
			check(t, list, m, a, a+uint32(rng.Intn(space-int(a)+1)))
		}
		// After a final compaction every live id is visible somewhere, so
		// nothing that is no longer visible is kept (no leak).
		list, dropped := Compact(list)
		for _, id := range dropped {
			delete(live, id)
		}
		visible := map[uint64]bool{}
		for _, c := range m.cells {
			visible[c.id] = true
		}
		for id := range live {
			if !visible[id] {
				t.Fatalf("seq %d: block %d is invisible but still referenced by %+v", seq, id, list)
			}
		}
		got, err := Decode(Encode(list))
		if err != nil || !slices.Equal(got, list) && len(list) != 0 {
			t.Fatalf("encode round trip: %v\n%+v\n%+v", err, got, list)
		}
	}
}

func TestResolveEmpty(t *testing.T) {
	if p := Resolve(nil, 5, 5); p != nil {
		t.Fatalf("empty range resolved to %+v", p)
	}
	p := Resolve(nil, 0, 10)
	if len(p) != 1 || p[0] != (Piece{Pos: 0, Len: 10}) {
		t.Fatalf("hole resolved to %+v", p)
	}
}

func TestCompactDropsSharedBlockOnce(t *testing.T) {
	list := []wire.Slice{
		{Pos: 0, Len: 10, ID: 7, Size: 20},
		{Pos: 10, Len: 10, ID: 7, Off: 10, Size: 20},
		{Pos: 0, Len: 20, ID: 8, Size: 20},
	}
	kept, dropped := Compact(list)
	if len(kept) != 1 || kept[0].ID != 8 || !slices.Equal(dropped, []uint64{7}) {
		t.Fatalf("kept %+v dropped %v", kept, dropped)
	}
	// A block still visible through one of its slices is not dropped.
	list = append(list[:2:2], wire.Slice{Pos: 0, Len: 10, ID: 9, Size: 10})
	if _, dropped := Compact(list); len(dropped) != 0 {
		t.Fatalf("dropped %v while block 7 is partly visible", dropped)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	good := Encode([]wire.Slice{{Pos: 1, Len: 2, ID: 3, Group: 1, Off: 0, Size: 4}})
	cases := map[string][]byte{
		"version":   {9, 0},
		"count":     {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"truncated": good[:len(good)-1],
		"trailing":  append(slices.Clone(good), 0),
		"past end":  Encode([]wire.Slice{{Pos: wire.ChunkSize - 1, Len: 2, ID: 1, Size: 2}}),
		"off block": Encode([]wire.Slice{{Pos: 0, Len: 4, ID: 1, Off: 2, Size: 4}}),
		"empty":     Encode([]wire.Slice{{Pos: 0, Len: 0, ID: 1, Size: 4}}),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]wire.Slice{{Pos: 1, Len: 2, ID: 3, Group: 1, Size: 4}}))
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(list))
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("decoded list does not round trip: %v", err)
		}
		Resolve(list, 0, wire.ChunkSize) // must not panic
		Compact(list)
	})
}

func TestStored(t *testing.T) {
	sl := func(pos, n uint32, id uint64) wire.Slice {
		return wire.Slice{Pos: pos, Len: n, ID: id, Size: n}
	}
	for _, tc := range []struct {
		name string
		list []wire.Slice
		want uint64
	}{
		{"empty", nil, 0},
		{"one slice", []wire.Slice{sl(0, 100, 1)}, 100},
		{"hole before", []wire.Slice{sl(1<<20, 100, 1)}, 100},
		{"overlap counts once", []wire.Slice{sl(0, 100, 1), sl(50, 100, 2)}, 150},
		{"covered entirely", []wire.Slice{sl(10, 10, 1), sl(0, 100, 2)}, 100},
		{"zero slice is a hole", []wire.Slice{sl(0, 100, 1), sl(20, 30, 0)}, 70},
		{"disjoint", []wire.Slice{sl(0, 10, 1), sl(100, 10, 2)}, 20},
		{"whole chunk", []wire.Slice{sl(0, wire.ChunkSize, 1)}, wire.ChunkSize},
	} {
		if got := Stored(tc.list); got != tc.want {
			t.Errorf("%s: Stored = %d, want %d", tc.name, got, tc.want)
		}
	}
}
