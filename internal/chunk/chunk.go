// Package chunk resolves, compacts, truncates and encodes the slice list of
// one chunk: the pure core of the data model that the metaserver (commit,
// truncate) and the client (reads) share.
//
// A chunk's slices are kept in commit order and a later slice wins where
// slices overlap. Bytes no slice covers are a hole and read as zeros.
package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/reelfs/reelfs/internal/wire"
)

// Piece is one resolved run of a chunk: bytes [Pos, Pos+Len) of the chunk
// are bytes [Off, Off+Len) of block ID. ID 0 means the run reads as zeros.
type Piece struct {
	Pos   uint32
	Len   uint32
	ID    uint64
	Group uint32
	Off   uint32
	Size  uint32
}

// End is the chunk offset just past the piece.
func (p Piece) End() uint32 { return p.Pos + p.Len }

// Resolve returns the pieces that make up bytes [pos, end) of a chunk with
// the given slice list, in order and covering the range exactly.
func Resolve(list []wire.Slice, pos, end uint32) []Piece {
	if end <= pos {
		return nil
	}
	out := []Piece{{Pos: pos, Len: end - pos}}
	for _, s := range list {
		a, b := max(s.Pos, pos), min(s.Pos+s.Len, end)
		if a >= b {
			continue
		}
		p := Piece{Pos: a, Len: b - a, ID: s.ID, Group: s.Group, Off: s.Off + (a - s.Pos), Size: s.Size}
		if s.ID == 0 {
			p.Group, p.Off, p.Size = 0, 0, 0
		}
		out = overlay(out, p)
	}
	return out
}

// Stored returns how many bytes of a chunk with the given slice list are
// in blocks: every byte some slice of a block covers, holes not counted.
func Stored(list []wire.Slice) uint64 {
	var n uint64
	for _, p := range Resolve(list, 0, wire.ChunkSize) {
		if p.ID != 0 {
			n += uint64(p.Len)
		}
	}
	return n
}

// overlay replaces the part of the sorted, contiguous pieces that p covers
// by p itself.
func overlay(pieces []Piece, p Piece) []Piece {
	out := make([]Piece, 0, len(pieces)+2)
	inserted := false
	for _, q := range pieces {
		if q.End() <= p.Pos || q.Pos >= p.End() {
			if !inserted && q.Pos >= p.End() {
				out = append(out, p)
				inserted = true
			}
			out = append(out, q)
			continue
		}
		if q.Pos < p.Pos { // left remainder of q
			l := q
			l.Len = p.Pos - q.Pos
			out = append(out, l)
		}
		if !inserted {
			out = append(out, p)
			inserted = true
		}
		if q.End() > p.End() { // right remainder of q
			r := q
			cut := p.End() - q.Pos
			r.Pos += cut
			r.Len -= cut
			if r.ID != 0 {
				r.Off += cut
			}
			out = append(out, r)
		}
	}
	if !inserted {
		out = append(out, p)
	}
	return out
}

// Compact drops the slices that later slices hide entirely. dropped holds,
// once each, the block ids that no kept slice references any more.
func Compact(list []wire.Slice) (kept []wire.Slice, dropped []uint64) {
	var covered []span // union of later slices, sorted and merged
	keep := make([]bool, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		sp := span{s.Pos, s.Pos + s.Len}
		if s.Len == 0 || contains(covered, sp) {
			continue
		}
		keep[i] = true
		covered = addSpan(covered, sp)
	}
	for i, s := range list {
		if keep[i] {
			kept = append(kept, s)
		}
	}
	return kept, unreferenced(list, kept)
}

// Truncate trims the slice list so that no slice reaches past size (a
// chunk-local offset). dropped holds the block ids no kept slice references.
func Truncate(list []wire.Slice, size uint32) (kept []wire.Slice, dropped []uint64) {
	for _, s := range list {
		if s.Pos >= size {
			continue
		}
		if s.Pos+s.Len > size {
			s.Len = size - s.Pos
		}
		kept = append(kept, s)
	}
	return kept, unreferenced(list, kept)
}

// unreferenced lists, once each and in first-seen order, the non-zero
// block ids of before that after does not reference.
func unreferenced(before, after []wire.Slice) []uint64 {
	live := make(map[uint64]bool, len(after))
	for _, s := range after {
		live[s.ID] = true
	}
	var out []uint64
	for _, s := range before {
		if s.ID != 0 && !live[s.ID] {
			live[s.ID] = true // report once
			out = append(out, s.ID)
		}
	}
	return out
}

type span struct{ a, b uint32 }

func contains(spans []span, s span) bool {
	for _, c := range spans {
		if c.a <= s.a && s.b <= c.b {
			return true
		}
	}
	return false
}

// addSpan inserts s into sorted, disjoint, non-adjacent spans, merging.
func addSpan(spans []span, s span) []span {
	out := make([]span, 0, len(spans)+1)
	for _, c := range spans {
		switch {
		case c.b < s.a:
			out = append(out, c)
		case s.b < c.a:
			out = append(out, s)
			s = c
		default:
			s = span{min(s.a, c.a), max(s.b, c.b)}
		}
	}
	return append(out, s)
}

// ErrCorrupt reports an encoded slice list that does not decode.
var ErrCorrupt = errors.New("chunk: corrupt slice list")

const encVersion = 1

// Encode returns the binary form of a slice list, as stored by the
// metaserver: a version byte, a count, then six uvarints per slice.
func Encode(list []wire.Slice) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(list)*16)
	b = append(b, encVersion)
	b = binary.AppendUvarint(b, uint64(len(list)))
	for _, s := range list {
		b = binary.AppendUvarint(b, uint64(s.Pos))
		b = binary.AppendUvarint(b, uint64(s.Len))
		b = binary.AppendUvarint(b, s.ID)
		b = binary.AppendUvarint(b, uint64(s.Group))
		b = binary.AppendUvarint(b, uint64(s.Off))
		b = binary.AppendUvarint(b, uint64(s.Size))
	}
	return b
}

// Decode parses Encode's output, checking every slice stays inside its
// chunk and its block.
func Decode(b []byte) ([]wire.Slice, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != encVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	n, ok := next()
	if !ok || n > uint64(len(b)) { // every slice takes at least 6 bytes
		return nil, fmt.Errorf("%w: bad count", ErrCorrupt)
	}
	list := make([]wire.Slice, 0, n)
	for i := uint64(0); i < n; i++ {
		var v [6]uint64
		for j := range v {
			if v[j], ok = next(); !ok {
				return nil, fmt.Errorf("%w: slice %d truncated", ErrCorrupt, i)
			}
		}
		s := wire.Slice{ID: v[2]}
		if v[0] > wire.ChunkSize || v[1] > wire.ChunkSize || v[3] > 1<<32-1 ||
			v[4] > wire.MaxBlockSize || v[5] > wire.MaxBlockSize {
			return nil, fmt.Errorf("%w: slice %d out of range", ErrCorrupt, i)
		}
		s.Pos, s.Len, s.Group, s.Off, s.Size = uint32(v[0]), uint32(v[1]), uint32(v[3]), uint32(v[4]), uint32(v[5])
		if err := Check(s); err != nil {
			return nil, fmt.Errorf("%w: slice %d: %v", ErrCorrupt, i, err)
		}
		list = append(list, s)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
	}
	return list, nil
}

// Check reports whether a slice is well formed: it lies inside its chunk
// and, unless it is a hole, inside its block.
func Check(s wire.Slice) error {
	if s.Len == 0 {
		return fmt.Errorf("empty slice")
	}
	if uint64(s.Pos)+uint64(s.Len) > wire.ChunkSize {
		return fmt.Errorf("slice [%d,+%d) passes the chunk end", s.Pos, s.Len)
	}
	if s.ID == 0 {
		return nil
	}
	if s.Size == 0 || s.Size > wire.MaxBlockSize {
		return fmt.Errorf("block size %d out of range", s.Size)
	}
	if uint64(s.Off)+uint64(s.Len) > uint64(s.Size) {
		return fmt.Errorf("slice [%d,+%d) passes the end of block %d of %d bytes", s.Off, s.Len, s.ID, s.Size)
	}
	return nil
}
