package client

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/reelfs/reelfs/internal/chunk"
	"github.com/reelfs/reelfs/internal/wire"
)

const testBlock = 64 << 10

func fill(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func TestWriteBufferAppendsSequentialWrites(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	var full []*wslice
	const total = 67 * 1000
	for off := 0; off < total; off += 1000 {
		full = append(full, w.write(int64(off), fill(1000, byte(off)))...)
	}
	list := w.chunks[0]
	if len(list) != 2 {
		t.Fatalf("%d slices, want 2 (one full block, one started)", len(list))
	}
	if list[0].n != testBlock || list[1].pos != testBlock || list[1].n != total-testBlock {
		t.Fatalf("slices %s / %s", list[0], list[1])
	}
	if len(full) != 1 || full[0] != list[0] {
		t.Fatalf("full = %d slices, want the first", len(full))
	}
	if w.dirty != total {
		t.Fatalf("dirty = %d", w.dirty)
	}
	// Slices start in exact-size buffers and move to a pooled block
	// buffer once they pass smallSlice.
	big := newWriteBuffer(1<<20, newBufPool(1<<20))
	big.write(0, fill(1000, 1))
	if s := big.chunks[0][0]; s.pooled || cap(s.data) >= smallSlice {
		t.Fatalf("a 1000-byte slice holds a %d-byte pooled=%v buffer", cap(s.data), s.pooled)
	}
	big.write(1000, fill(smallSlice, 2))
	if s := big.chunks[0][0]; !s.pooled || cap(s.data) != 1<<20 || !bytes.Equal(s.data[:1000], fill(1000, 1)) {
		t.Fatalf("grown slice: pooled=%v cap=%d", s.pooled, cap(s.data))
	}
}

func TestWriteBufferSeekBackIsNewSliceAndStreamContinues(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	w.write(0, fill(30000, 1))     // the stream
	w.write(100, fill(20, 2))      // patch the header
	w.write(30000, fill(10000, 3)) // the stream goes on
	w.write(110, fill(20, 4))      // patch again, overlapping the first patch
	list := w.chunks[0]
	if len(list) != 3 {
		t.Fatalf("%d slices, want 3 (stream, patch, patch)", len(list))
	}
	if list[0].pos != 0 || list[0].n != 40000 {
		t.Fatalf("stream slice = [%d,+%d), want [0,+40000)", list[0].pos, list[0].n)
	}
	if list[1].pos != 100 || list[1].n != 20 || list[2].pos != 110 || list[2].n != 20 {
		t.Fatalf("patch slices %s %s", list[1], list[2])
	}
	// The first patch ends at 120, but extending it over [120,125) would
	// put the new bytes under the second patch: a new slice instead.
	w.write(120, fill(5, 5))
	if got := len(w.chunks[0]); got != 4 || w.chunks[0][1].n != 20 {
		t.Fatalf("%d slices after an overlapping write, want 4 with the first patch unchanged", got)
	}
}

func TestWriteBufferNoExtendUnderLaterSlice(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	w.write(0, fill(100, 1))   // A = [0,100)
	w.write(100, fill(50, 2))  // extends A to [0,150)
	w.write(150, fill(50, 3))  // still A: [0,200)
	w.write(120, fill(100, 4)) // B = [120,220) overwrites A's tail
	w.write(200, fill(10, 5))  // A ends at 200 but B covers [200,210): new slice
	list := w.chunks[0]
	if len(list) != 3 {
		t.Fatalf("%d slices, want 3", len(list))
	}
	if list[2].pos != 200 || list[2].n != 10 {
		t.Fatalf("last slice [%d,+%d), want [200,+10)", list[2].pos, list[2].n)
	}
	w.write(220, fill(10, 6)) // B ends at 220 and nothing later overlaps: extend B
	if len(w.chunks[0]) != 3 || w.chunks[0][1].n != 110 {
		t.Fatalf("B not extended: %d slices, B len %d", len(w.chunks[0]), w.chunks[0][1].n)
	}
}

func TestWriteBufferCutsAtChunkAndBlock(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	off := int64(wire.ChunkSize - testBlock/2)
	full := w.write(off, fill(testBlock/2+2*testBlock+10, 9))
	c0, c1 := w.chunks[0], w.chunks[1]
	if len(c0) != 1 || c0[0].pos != wire.ChunkSize-testBlock/2 || c0[0].n != testBlock/2 {
		t.Fatalf("chunk 0: %d slices", len(c0))
	}
	if len(c1) != 3 || c1[0].pos != 0 || c1[0].n != testBlock || c1[1].pos != testBlock || c1[2].n != 10 {
		t.Fatalf("chunk 1 slices %d", len(c1))
	}
	if len(full) != 2 {
		t.Fatalf("%d full slices, want 2", len(full))
	}
	// The slice at the end of chunk 0 must not grow into chunk 1.
	for _, s := range c0 {
		if int64(s.pos)+int64(s.n) > wire.ChunkSize {
			t.Fatalf("slice crosses the chunk end")
		}
	}
}

func TestWriteBufferPacksSmallSlices(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	for i := 0; i < 100; i++ { // 100 disjoint 1000-byte writes, every other KiB
		w.write(int64(i)*2000, fill(1000, byte(i)))
	}
	packs := w.packs()
	total := 0
	for _, p := range packs {
		sum := 0
		for _, s := range p {
			sum += int(s.n)
		}
		if sum > testBlock {
			t.Fatalf("pack of %d bytes exceeds the block size", sum)
		}
		total += len(p)
	}
	if total != 100 || len(packs) != 2 {
		t.Fatalf("%d slices in %d packs, want 100 in 2", total, len(packs))
	}
}

func TestWriteBufferPlanIsPrefix(t *testing.T) {
	w := newWriteBuffer(testBlock, newBufPool(testBlock))
	w.write(0, fill(10, 1))
	w.write(100, fill(10, 2))
	w.write(200, fill(10, 3))
	list := w.chunks[0]
	for i, s := range list {
		if i == 1 {
			continue // the middle slice stays in memory
		}
		w.freeze(s)
		w.uploaded(s, uint64(i+1), 1, 10)
	}
	p := w.plan()
	if len(p.slices) != 1 || p.slices[0].ID != 1 {
		t.Fatalf("plan of %d slices, want only the first slice", len(p.slices))
	}
	w.committed(p)
	if len(w.chunks[0]) != 2 || w.pending != 1 {
		t.Fatalf("after commit: %d slices, %d pending", len(w.chunks[0]), w.pending)
	}
}

// model drives a writeBuffer plus a simulated metaserver and block store
// with random writes, uploads, commits and truncations, and checks every
// read against a plain byte slice.
type model struct {
	t         *testing.T
	rng       *rand.Rand
	w         *writeBuffer
	committed map[uint32][]wire.Slice
	blocks    map[uint64][]byte
	nextID    uint64
	bytes     []byte // the file's expected content
}

func (m *model) write(off int64, p []byte) {
	m.w.write(off, p)
	if end := off + int64(len(p)); end > int64(len(m.bytes)) {
		m.bytes = append(m.bytes, make([]byte, end-int64(len(m.bytes)))...)
	}
	copy(m.bytes[off:], p)
}

// upload stores some in-memory packs as blocks.
func (m *model) upload(all bool) {
	for _, pack := range m.w.packs() {
		if !all && m.rng.Intn(2) == 0 {
			continue
		}
		var data []byte
		for _, s := range pack {
			s.off = uint32(len(data))
			data = append(data, m.w.freeze(s)...)
		}
		m.nextID++
		m.blocks[m.nextID] = data
		for _, s := range pack {
			m.w.uploaded(s, m.nextID, 7, len(data))
		}
	}
}

func (m *model) commit() {
	p := m.w.plan()
	for _, cs := range p.slices {
		m.committed[cs.Index] = append(m.committed[cs.Index], cs.Slice)
	}
	m.w.committed(p)
}

// truncate mirrors Client truncation: trim locally, flush, truncate the
// committed lists.
func (m *model) truncate(size int64) {
	m.w.truncate(size)
	m.upload(true)
	m.commit()
	for idx, list := range m.committed {
		start := int64(idx) * wire.ChunkSize
		if start >= size {
			delete(m.committed, idx)
			continue
		}
		if size-start < wire.ChunkSize {
			m.committed[idx], _ = chunk.Truncate(list, uint32(size-start))
		}
	}
	if size < int64(len(m.bytes)) {
		m.bytes = m.bytes[:size]
	} else {
		m.bytes = append(m.bytes, make([]byte, size-int64(len(m.bytes)))...)
	}
}

func (m *model) read(off int64, n int) []byte {
	out := make([]byte, n)
	for pos := 0; pos < n; {
		at := off + int64(pos)
		idx := uint32(at / wire.ChunkSize)
		a := uint32(at % wire.ChunkSize)
		k := min(n-pos, int(wire.ChunkSize-int64(a)))
		for i := range out[pos : pos+k] {
			out[pos+i] = 0xEE // resolveInto must overwrite every byte
		}
		pieces := resolveInto(m.w, idx, m.committed[idx], a, a+uint32(k), out[pos:pos+k], nil)
		for _, p := range pieces {
			blk, ok := m.blocks[p.b.id]
			if !ok || int(p.b.size) != len(blk) {
				m.t.Fatalf("piece names block %d (size %d) that the store does not hold", p.b.id, p.b.size)
			}
			copy(p.dst, blk[p.off:p.off+p.n])
		}
		pos += k
	}
	return out
}

func TestOverlayAgainstByteModel(t *testing.T) {
	const base = wire.ChunkSize - 300<<10 // straddle a chunk boundary
	const span = 600 << 10
	for seed := int64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewSource(seed))
		m := &model{t: t, rng: rng, w: newWriteBuffer(testBlock, newBufPool(testBlock)),
			committed: make(map[uint32][]wire.Slice), blocks: make(map[uint64][]byte)}
		m.bytes = make([]byte, 0)
		// The model's file starts at 0; only [base, base+span) is written
		// so the byte model stays small: keep bytes relative to 0 but
		// sparse below base by writing once at base.
		m.write(base, fill(1, 0))
		for op := 0; op < 400; op++ {
			switch r := rng.Intn(100); {
			case r < 55:
				off := base + rng.Int63n(span)
				n := 1 + rng.Intn(3*testBlock)
				if rng.Intn(4) == 0 {
					n = 1 + rng.Intn(300)
				}
				m.write(off, fill(n, byte(rng.Intn(256))))
			case r < 70:
				m.upload(false)
			case r < 80:
				m.commit()
			case r < 85:
				m.truncate(base + rng.Int63n(span))
			default:
				size := int64(len(m.bytes))
				off := base + rng.Int63n(size-base+1)
				n := int(min(size-off, int64(1+rng.Intn(200<<10))))
				got := m.read(off, n)
				if !bytes.Equal(got, m.bytes[off:off+int64(n)]) {
					t.Fatalf("seed %d op %d: read [%d,+%d) differs from the model", seed, op, off, n)
				}
			}
			if m.w.dirty < 0 || m.w.pending < 0 || m.w.pendingBytes < 0 || m.w.inflight != 0 {
				t.Fatalf("seed %d op %d: accounting dirty=%d pending=%d bytes=%d inflight=%d",
					seed, op, m.w.dirty, m.w.pending, m.w.pendingBytes, m.w.inflight)
			}
		}
		// Everything uploaded and committed: the buffer is empty and the
		// committed lists alone give the model.
		m.upload(true)
		m.commit()
		if !m.w.empty() || m.w.dirty != 0 || m.w.pending != 0 || m.w.pendingBytes != 0 {
			t.Fatalf("seed %d: buffer not empty after full commit", seed)
		}
		size := int64(len(m.bytes))
		if got := m.read(base, int(size-base)); !bytes.Equal(got, m.bytes[base:]) {
			t.Fatalf("seed %d: final read differs from the model", seed)
		}
	}
}

func (s *wslice) String() string { return fmt.Sprintf("[%d,+%d) state %d", s.pos, s.n, s.state) }
