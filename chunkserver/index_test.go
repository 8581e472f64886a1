package chunkserver

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// checkIndex compares x with the reference model and checks its shape.
func checkIndex(t *testing.T, x *index, model map[uint64]blockMeta) {
	t.Helper()
	var used uint64
	for _, m := range model {
		used += uint64(m.size)
	}
	if x.count != uint64(len(model)) || x.used != used {
		t.Fatalf("index counts %d blocks %d bytes, model %d blocks %d bytes", x.count, x.used, len(model), used)
	}
	var prev uint64
	first := true
	for bi, bk := range x.buckets {
		if len(bk) == 0 || len(bk) > bucketMax {
			t.Fatalf("bucket %d has %d entries", bi, len(bk))
		}
		for _, m := range bk {
			if !first && m.id <= prev {
				t.Fatalf("bucket %d: id %d after %d", bi, m.id, prev)
			}
			prev, first = m.id, false
		}
	}
	ids := make([]uint64, 0, len(model))
	for id := range model {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var got []uint64
	x.scan(0, func(m blockMeta) bool {
		if m != model[m.id] {
			t.Fatalf("entry %+v, model %+v", m, model[m.id])
		}
		got = append(got, m.id)
		return true
	})
	if len(got) != len(ids) {
		t.Fatalf("scan saw %d ids, want %d", len(got), len(ids))
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("scan[%d] = %d, want %d", i, got[i], ids[i])
		}
	}
}

func TestIndexAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var x index
	model := map[uint64]blockMeta{}
	ops := 20000
	if testing.Short() {
		ops = 5000
	}
	next := uint64(1)
	for i := 0; i < ops; i++ {
		switch k := r.IntN(10); {
		case k < 4: // ascending ids, as leases hand them out
			m := blockMeta{id: next, size: r.Uint32N(1 << 22), mtime: int64(i)}
			next += 1 + uint64(r.IntN(3))
			x.put(m)
			model[m.id] = m
		case k < 6: // anywhere, sometimes replacing
			m := blockMeta{id: 1 + r.Uint64N(next+10), size: r.Uint32N(1 << 22), mtime: int64(i)}
			x.put(m)
			model[m.id] = m
		default:
			id := 1 + r.Uint64N(next+10)
			_, ok := x.remove(id)
			if _, want := model[id]; ok != want {
				t.Fatalf("remove(%d) = %v, model has it: %v", id, ok, want)
			}
			delete(model, id)
		}
		if i%1000 == 0 {
			checkIndex(t, &x, model)
		}
	}
	checkIndex(t, &x, model)
	for id, m := range model {
		if got, ok := x.get(id); !ok || got != m {
			t.Fatalf("get(%d) = %+v, %v", id, got, ok)
		}
	}
}

func TestIndexScanFrom(t *testing.T) {
	var x index
	for id := uint64(10); id <= 10000; id += 10 {
		x.put(blockMeta{id: id})
	}
	for _, c := range []struct{ after, first uint64 }{{0, 10}, {9, 10}, {10, 20}, {15, 20}, {5005, 5010}, {9990, 10000}} {
		var got uint64
		x.scan(c.after, func(m blockMeta) bool { got = m.id; return false })
		if got != c.first {
			t.Errorf("scan(%d) starts at %d, want %d", c.after, got, c.first)
		}
	}
	for _, after := range []uint64{10000, 10001, ^uint64(0)} {
		x.scan(after, func(m blockMeta) bool { t.Fatalf("scan(%d) yielded %d", after, m.id); return false })
	}
	var empty index
	empty.scan(0, func(blockMeta) bool { t.Fatal("empty index yielded"); return false })
	if _, ok := empty.remove(1); ok {
		t.Fatal("remove from empty index succeeded")
	}
}
