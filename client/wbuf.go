package client

import (
	"sort"
	"sync"

	"github.com/reelfs/reelfs/internal/wire"
)

// smallSlice is the size below which a new slice gets an exact-size buffer
// instead of a pooled BlockSize one, so that many small seek-back writes do
// not each pin a whole block of memory. A slice that grows past it moves to
// a pooled buffer (one copy of at most this many bytes).
const smallSlice = 256 << 10

// localBit marks the ids that writeBuffer.overlay gives slices still in
// memory. Real block ids come from metaserver leases, which count up from
// 1 and never get near 2^63.
const localBit = 1 << 63

// lookBack bounds how many of a chunk's newest slices a write inspects for
// one it can extend.
const lookBack = 8

// bufPool recycles BlockSize write buffers.
type bufPool struct {
	size int
	p    sync.Pool // of *[]byte with cap size
}

func newBufPool(size int) *bufPool { return &bufPool{size: size} }

func (bp *bufPool) get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, bp.size)
}

func (bp *bufPool) put(b []byte) {
	if cap(b) != bp.size {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}

// sliceState is where a slice's bytes are: in memory (appendable), being
// uploaded (frozen, still readable from memory) or in a block on a
// chunkserver (memory released, awaiting commit).
type sliceState uint8

const (
	sliceMem sliceState = iota
	sliceUploading
	sliceUploaded
)

// wslice is one pending write: bytes [pos, pos+n) of a chunk. It never
// crosses a chunk boundary and is at most BlockSize long, so it becomes
// exactly one block.
type wslice struct {
	pos    uint32
	n      uint32
	seq    uint64 // creation order; Flush waits for every slice up to a seq
	state  sliceState
	data   []byte // the bytes while not uploaded: data[:n]
	pooled bool   // data came from the bufPool
	mem    int64  // bytes this slice counts in writeBuffer.dirty

	off   uint32 // offset of the slice's bytes in its block
	id    uint64 // block id once uploaded
	group uint32 // the block's group
	bsize uint32 // bytes in the block (n may shrink below it by truncation)
	err   error  // last failed upload, while back in sliceMem
}

// wire returns the committed form of an uploaded slice.
func (s *wslice) wire() wire.Slice {
	return wire.Slice{Pos: s.pos, Len: s.n, ID: s.id, Group: s.group, Off: s.off, Size: s.bsize}
}

// writeBuffer is the write state of one inode: per chunk, the ordered list
// of slices written since the last commit. Within a chunk a later slice
// wins where slices overlap, exactly like a committed slice list, so a
// reader overlays the committed list with this one. It is a plain data
// structure; the inode's mutex guards it.
type writeBuffer struct {
	blockSize int
	pool      *bufPool
	gauge     *dirtyGauge // the client's dirty bytes: freed here, reserved by the writer

	chunks map[uint32][]*wslice
	seq    uint64 // seq of the newest slice

	dirty        int64 // bytes of slices not yet uploaded
	inflight     int   // slices in sliceUploading
	pending      int   // slices uploaded and not committed
	pendingBytes int64 // bytes they cover
	// freed are the blocks of uploaded slices dropped without a commit
	// (truncated away, or discarded after a failed flush); takeFreed
	// hands out those no remaining slice uses, for the client to discard.
	freed []wire.BlockRef
}

func newWriteBuffer(blockSize int, pool *bufPool) *writeBuffer {
	// chunks is made on the first write: most opens (create+close of an
	// empty file, reads) never write.
	return &writeBuffer{blockSize: blockSize, pool: pool}
}

// empty reports whether nothing awaits upload or commit.
func (w *writeBuffer) empty() bool { return len(w.chunks) == 0 }

// write records p at file offset off. It returns the slices that reached
// BlockSize and should be uploaded now. Its only copy of p is into slice
// buffers.
func (w *writeBuffer) write(off int64, p []byte) (full []*wslice) {
	for len(p) > 0 {
		idx := uint32(off / wire.ChunkSize)
		pos := uint32(off % wire.ChunkSize)
		k := min(int64(len(p)), wire.ChunkSize-int64(pos))
		full = w.writeChunk(idx, pos, p[:k], full)
		p = p[k:]
		off += k
	}
	return full
}

func (w *writeBuffer) writeChunk(idx, pos uint32, p []byte, full []*wslice) []*wslice {
	if w.chunks == nil {
		w.chunks = make(map[uint32][]*wslice)
	}
	list := w.chunks[idx]
	if s := w.appendable(list, pos, len(p)); s != nil {
		k := min(len(p), w.blockSize-int(s.n))
		w.grow(s, int(s.n)+k)
		s.data = append(s.data[:s.n], p[:k]...)
		s.n += uint32(k)
		s.mem += int64(k)
		w.dirty += int64(k)
		if int(s.n) == w.blockSize {
			full = append(full, s)
		}
		p = p[k:]
		pos += uint32(k)
	}
	for len(p) > 0 {
		k := min(len(p), w.blockSize)
		w.seq++
		s := &wslice{pos: pos, n: uint32(k), seq: w.seq, mem: int64(k)}
		if k >= smallSlice {
			s.data, s.pooled = w.pool.get(), true
		} else {
			s.data = make([]byte, 0, max(k, 4<<10))
		}
		s.data = append(s.data, p[:k]...)
		w.dirty += int64(k)
		list = append(list, s)
		if k == w.blockSize {
			full = append(full, s)
		}
		p = p[k:]
		pos += uint32(k)
	}
	w.chunks[idx] = list
	return full
}

// appendable finds an in-memory slice that ends at pos and may be
// extended by (up to) n bytes: no later slice of the chunk may overlap the
// extension, since the extension must win over everything written before.
func (w *writeBuffer) appendable(list []*wslice, pos uint32, n int) *wslice {
	for i := len(list) - 1; i >= 0 && i >= len(list)-lookBack; i-- {
		s := list[i]
		if s.state != sliceMem || s.pos+s.n != pos || int(s.n) >= w.blockSize {
			continue
		}
		end := pos + uint32(min(n, w.blockSize-int(s.n)))
		clear := true
		for _, t := range list[i+1:] {
			if t.pos < end && pos < t.pos+t.n {
				clear = false
				break
			}
		}
		if clear {
			return s
		}
	}
	return nil
}

// grow makes room for need bytes in s.data, moving to a pooled block
// buffer once the slice is no longer small.
func (w *writeBuffer) grow(s *wslice, need int) {
	if cap(s.data) >= need {
		return
	}
	var nb []byte
	if need > smallSlice && !s.pooled {
		nb, s.pooled = w.pool.get(), true
	} else {
		nb = make([]byte, 0, min(max(2*cap(s.data), need), w.blockSize))
	}
	s.data = append(nb, s.data[:s.n]...)
}

// release drops a slice's memory.
func (w *writeBuffer) release(s *wslice) {
	if s.pooled {
		w.pool.put(s.data)
	}
	s.data, s.pooled = nil, false
	w.dirty -= s.mem
	w.gauge.free(s.mem)
	s.mem = 0
}

// freeze marks s as being uploaded and returns the bytes to upload. The
// bytes stay valid (and readable) until uploaded or failed is called.
func (w *writeBuffer) freeze(s *wslice) []byte {
	s.state = sliceUploading
	s.err = nil
	w.inflight++
	return s.data[:s.n]
}

// packs groups every in-memory slice into upload units: a slice of at
// least smallSlice bytes alone, smaller ones of one chunk packed together
// into blocks of at most blockSize, so that many small writes (seek-back
// patches, random writes) cost few PUTs. Slices of a pack keep their own
// positions; only their blocks are shared.
func (w *writeBuffer) packs() [][]*wslice {
	var out [][]*wslice
	for _, list := range w.chunks {
		var pack []*wslice
		packed := 0
		for _, s := range list {
			if s.state != sliceMem {
				continue
			}
			if int(s.n) >= smallSlice {
				out = append(out, []*wslice{s})
				continue
			}
			if packed+int(s.n) > w.blockSize {
				out = append(out, pack)
				pack, packed = nil, 0
			}
			pack = append(pack, s)
			packed += int(s.n)
		}
		if len(pack) > 0 {
			out = append(out, pack)
		}
	}
	return out
}

// uploaded records that s is stored at s.off in block id (of size bytes)
// of group, and frees its memory.
func (w *writeBuffer) uploaded(s *wslice, id uint64, group uint32, size int) {
	w.inflight--
	s.state = sliceUploaded
	s.id, s.group, s.bsize = id, group, uint32(size)
	w.release(s)
	w.pending++
	w.pendingBytes += int64(s.n)
}

// failed puts s back in memory after a failed upload.
func (w *writeBuffer) failed(s *wslice, err error) {
	w.inflight--
	s.state = sliceMem
	s.err = err
}

// uploadedIDs appends the blocks of slices uploaded and not committed to
// ids (an id once per slice that uses it).
func (w *writeBuffer) uploadedIDs(ids []uint64) []uint64 {
	for _, list := range w.chunks {
		for _, s := range list {
			if s.state == sliceUploaded {
				ids = append(ids, s.id)
			}
		}
	}
	return ids
}

// unsettled reports whether some slice with seq <= upTo is not uploaded
// yet, and the error of one that failed, if any.
func (w *writeBuffer) unsettled(upTo uint64) (waiting bool, err error) {
	for _, list := range w.chunks {
		for _, s := range list {
			if s.seq > upTo || s.state == sliceUploaded {
				continue
			}
			if s.state == sliceMem && s.err != nil {
				if err == nil {
					err = s.err
				}
				continue
			}
			waiting = true
		}
	}
	return waiting, err
}

// commitPlan is the set of slices one commit makes permanent: per chunk,
// the uploaded prefix of its list. Only a prefix may be committed: a later
// slice committed before an earlier one still in memory would lose to it.
type commitPlan struct {
	slices []wire.ChunkSlice
	taken  map[uint32]int // chunk -> length of the prefix committed
}

func (w *writeBuffer) plan() commitPlan {
	p := commitPlan{taken: make(map[uint32]int)}
	idxs := make([]uint32, 0, len(w.chunks))
	for idx := range w.chunks {
		idxs = append(idxs, idx)
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	for _, idx := range idxs {
		k := 0
		for _, s := range w.chunks[idx] {
			if s.state != sliceUploaded {
				break
			}
			p.slices = append(p.slices, wire.ChunkSlice{Index: idx, Slice: s.wire()})
			k++
		}
		if k > 0 {
			p.taken[idx] = k
		}
	}
	return p
}

// covers reports whether p takes every slice of the buffer.
func (w *writeBuffer) covers(p commitPlan) bool {
	for idx, list := range w.chunks {
		if p.taken[idx] != len(list) {
			return false
		}
	}
	return true
}

// committed drops the slices of a plan that the metaserver accepted. The
// lists only grew at their ends since the plan was made (commits and
// truncations are serialized), so the plan's prefixes are still in place.
func (w *writeBuffer) committed(p commitPlan) {
	for idx, k := range p.taken {
		list := w.chunks[idx]
		for _, s := range list[:k] {
			w.pending--
			w.pendingBytes -= int64(s.n)
		}
		rest := list[k:]
		if len(rest) == 0 {
			delete(w.chunks, idx)
			continue
		}
		w.chunks[idx] = append(list[:0:0], rest...)
	}
}

// truncate drops or trims pending slices past size. Slices being uploaded
// are left alone: the metaserver truncation that follows a flush trims
// them.
func (w *writeBuffer) truncate(size int64) {
	for idx, list := range w.chunks {
		start := int64(idx) * wire.ChunkSize
		limit := max(min(size-start, wire.ChunkSize), 0)
		kept := list[:0]
		for _, s := range list {
			switch {
			case s.state == sliceUploading || int64(s.pos)+int64(s.n) <= limit:
			case int64(s.pos) >= limit:
				w.drop(s)
				continue
			default:
				cut := int64(s.pos) + int64(s.n) - limit
				s.n -= uint32(cut)
				switch s.state {
				case sliceMem:
					s.mem -= cut
					w.dirty -= cut
					w.gauge.free(cut)
				case sliceUploaded:
					w.pendingBytes -= cut
				}
			}
			kept = append(kept, s)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(w.chunks, idx)
		} else {
			w.chunks[idx] = kept
		}
	}
}

func (w *writeBuffer) drop(s *wslice) {
	switch s.state {
	case sliceMem:
		w.release(s)
	case sliceUploaded:
		w.pending--
		w.pendingBytes -= int64(s.n)
		w.freed = append(w.freed, wire.BlockRef{ID: s.id, Group: s.group})
	}
}

// takeFreed returns, once each, the blocks of dropped slices that no
// slice left in the buffer uses (several slices share a block when they
// were packed into one upload).
func (w *writeBuffer) takeFreed() []wire.BlockRef {
	if len(w.freed) == 0 {
		return nil
	}
	used := make(map[uint64]bool)
	for _, list := range w.chunks {
		for _, s := range list {
			if s.state == sliceUploaded {
				used[s.id] = true
			}
		}
	}
	var out []wire.BlockRef
	for _, b := range w.freed {
		if !used[b.ID] {
			used[b.ID] = true // once
			out = append(out, b)
		}
	}
	w.freed = nil
	return out
}

// discard drops everything (the last handle closed after a failed flush).
// Slices being uploaded must have settled first.
func (w *writeBuffer) discard() {
	for idx, list := range w.chunks {
		for _, s := range list {
			w.drop(s)
		}
		delete(w.chunks, idx)
	}
}

// overlay returns committed followed by the pending slices of chunk idx,
// ready for chunk.Resolve. Slices still in memory get id localBit|i,
// where i is their index in the chunk's list, for local to find.
func (w *writeBuffer) overlay(idx uint32, committed []wire.Slice) []wire.Slice {
	list := w.chunks[idx]
	if len(list) == 0 {
		return committed
	}
	out := make([]wire.Slice, 0, len(committed)+len(list))
	out = append(out, committed...)
	for i, s := range list {
		if s.n == 0 {
			continue
		}
		if s.state == sliceUploaded {
			out = append(out, s.wire())
			continue
		}
		out = append(out, wire.Slice{Pos: s.pos, Len: s.n, ID: localBit | uint64(i), Size: s.n})
	}
	return out
}

// local returns the in-memory bytes [off, off+n) of the slice that
// overlay named id in chunk idx.
func (w *writeBuffer) local(idx uint32, id uint64, off, n uint32) []byte {
	s := w.chunks[idx][id&^localBit]
	return s.data[off : off+n]
}
