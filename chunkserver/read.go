package chunkserver

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/reelfs/reelfs/internal/wire"
)

// RangeRead is what DiskStore.ReadRange read.
type RangeRead struct {
	Size int64  // the block's data length, from its checked trailer
	Off  int64  // where Data starts in the block
	Data []byte // the verified bytes; aliases the caller's buffer
}

// ReadRange reads the bytes of block id that pick chooses, given the
// block's data length from its checked trailer, and verifies every piece
// they lie in against its CRC32C before returning them; an error from
// pick is returned as it is. buf is used when it holds the covering
// pieces (see BlockFile.ReadRange). A warm read finds the trailer in the
// cache (after an fstat confirms the open file is the one the trailer was
// read from) and does only the data pread.
func (s *DiskStore) ReadRange(ctx context.Context, id uint64, pick func(size int64) (off, n int64, err error), buf []byte) (RangeRead, error) {
	b, err := s.Open(ctx, id)
	if err != nil {
		return RangeRead{}, err
	}
	defer b.Close()
	off, n, err := pick(b.Size())
	if err != nil {
		return RangeRead{}, err
	}
	data, err := b.ReadRange(off, n, buf)
	if err != nil {
		return RangeRead{}, err
	}
	return RangeRead{Size: b.Size(), Off: off, Data: data}, nil
}

// Open opens block id for reading. Its trailer comes from the cache or
// is read and checked here; each ReadRange then verifies the pieces it
// returns.
func (s *DiskStore) Open(ctx context.Context, id uint64) (*BlockFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	return s.openFile(id, s.Path(id), true)
}

// openFile opens the block file at path. With useCache the trailer may
// come from the cache and a trailer read from the file fills it.
func (s *DiskStore) openFile(id uint64, path string, useCache bool) (*BlockFile, error) {
	gen := s.trailers.gen(id) // before the open: see trailerCache
	f, fi, err := s.openBlock(id, path)
	if err != nil {
		return nil, err
	}
	b := &BlockFile{f: f, id: id, store: s}
	if useCache {
		if tr, ok := s.trailers.lookup(id, fi); ok {
			b.tr, b.cached = tr, true
			return b, nil
		}
	}
	tr, err := s.decodeTrailerOf(f, fi, id)
	if err != nil {
		f.Close()
		return nil, err
	}
	b.tr = tr
	if useCache {
		s.trailers.add(id, gen, fi, tr)
	}
	return b, nil
}

// openBlock opens and stats the file of block id.
func (s *DiskStore) openBlock(id uint64, path string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, wire.Errorf(wire.ErrNotFound, "chunkserver %s: block %s not found", s.name, wire.BlockName(id))
	}
	if err != nil {
		return nil, nil, s.ioErr(id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.ioErr(id, err)
	}
	return f, fi, nil
}

// decodeTrailerOf reads the trailer of the open file f (whose stat is fi)
// with one pread of its tail and decodes it. A trailer that does not
// decode is a CHECKSUM error that also matches ErrTrailer.
func (s *DiskStore) decodeTrailerOf(f *os.File, fi fs.FileInfo, id uint64) (trailer, error) {
	size := fi.Size()
	tail := make([]byte, min(size, maxTrailerLen))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return trailer{}, s.ioErr(id, err)
	}
	tr, err := decodeTrailer(tail, size, s.tab)
	if err != nil {
		return trailer{}, &taggedError{
			err: wire.Errorf(wire.ErrChecksum, "chunkserver %s: block %s: damaged file: %v", s.name, wire.BlockName(id), err),
			tag: ErrTrailer,
		}
	}
	return tr, nil
}

func (s *DiskStore) ioErr(id uint64, err error) error {
	return wire.Errorf(wire.ErrIO, "chunkserver %s: block %s: %v", s.name, wire.BlockName(id), err)
}

// checkRange refuses a range outside a block of length bytes.
func (s *DiskStore) checkRange(id uint64, length, off, n int64) error {
	if off < 0 || n < 0 || off > length || n > length-off {
		return wire.Errorf(wire.ErrInvalid, "chunkserver: block %s: range %d+%d outside %d bytes",
			wire.BlockName(id), off, n, length)
	}
	return nil
}

// pieceSpan returns the 64 KiB piece boundaries around the n bytes at off
// of a block of length bytes.
func pieceSpan(length, off, n int64) (first, end int64) {
	first = off / wire.CRCBlock * wire.CRCBlock
	end = min((off+n+wire.CRCBlock-1)/wire.CRCBlock*wire.CRCBlock, length)
	return first, end
}

// readVerified reads the n bytes at off of the block in f, reading just
// the pieces that cover them and verifying each against tr.
func (s *DiskStore) readVerified(f *os.File, id uint64, tr trailer, off, n int64, buf []byte) ([]byte, error) {
	if err := s.checkRange(id, tr.length, off, n); err != nil {
		return nil, err
	}
	if n == 0 {
		return buf[:0], nil
	}
	first, end := pieceSpan(tr.length, off, n)
	if int64(cap(buf)) < end-first {
		buf = make([]byte, end-first)
	}
	buf = buf[:end-first]
	if err := s.preadSpan(f, id, first, buf); err != nil {
		return nil, err
	}
	if err := s.verifySpan(id, tr, first, buf); err != nil {
		return nil, err
	}
	return buf[off-first : off-first+n], nil
}

// preadSpan fills span from offset first of f.
func (s *DiskStore) preadSpan(f *os.File, id uint64, first int64, span []byte) error {
	if _, err := f.ReadAt(span, first); err != nil {
		// The trailer said the file is long enough, so a short read
		// means the file changed under us: damage, not a missing block.
		if errors.Is(err, io.EOF) {
			return wire.Errorf(wire.ErrChecksum, "chunkserver %s: block %s: file shorter than its trailer says at offset %d",
				s.name, wire.BlockName(id), first)
		}
		return s.ioErr(id, err)
	}
	return nil
}

// verifySpan checks each piece of span, which starts at piece boundary
// first, against its CRC32C in tr.
func (s *DiskStore) verifySpan(id uint64, tr trailer, first int64, span []byte) error {
	for p := int64(0); p < int64(len(span)); p += wire.CRCBlock {
		q := min(p+wire.CRCBlock, int64(len(span)))
		piece := (first + p) / wire.CRCBlock
		if crc32.Checksum(span[p:q], s.tab) != tr.crcs[piece] {
			return wire.Errorf(wire.ErrChecksum, "chunkserver %s: block %s: CRC32C mismatch in bytes %d-%d",
				s.name, wire.BlockName(id), first+p, first+q-1)
		}
	}
	return nil
}

// BlockFile is an open block, its trailer already checked.
type BlockFile struct {
	f      *os.File
	id     uint64
	store  *DiskStore
	tr     trailer
	cached bool // tr came from the trailer cache
}

// Size returns the block's data length.
func (b *BlockFile) Size() int64 { return b.tr.length }

// ReadRange returns the n bytes at off, reading just the 64 KiB pieces
// that cover them and verifying each against its CRC32C. buf is used when
// it holds the covering pieces (at most n + 2*wire.CRCBlock bytes,
// never more than the block size); the result aliases it. A mismatch is a
// wire.ErrChecksum error naming the block, the server and the offset.
func (b *BlockFile) ReadRange(off, n int64, buf []byte) ([]byte, error) {
	data, err := b.store.readVerified(b.f, b.id, b.tr, off, n, buf)
	if err != nil && b.cached && errors.Is(err, wire.ErrChecksum) {
		b.store.trailers.drop(b.id, b.tr)
	}
	return data, err
}

// Close closes the file.
func (b *BlockFile) Close() error { return b.f.Close() }

// fileIdentity is what ties a cached trailer to one block file: the
// device and inode, which a replacing rename changes, and the size, which
// damage by truncation or growth changes.
type fileIdentity struct {
	dev, ino uint64
	size     int64
}

// identityOf returns the identity of a stat'ed file; ok is false when the
// platform does not tell the inode (then nothing is cached).
func identityOf(fi fs.FileInfo) (fileIdentity, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{dev: uint64(st.Dev), ino: st.Ino, size: fi.Size()}, true
}
