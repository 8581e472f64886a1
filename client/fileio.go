package client

import (
	"context"
	"io"

	"github.com/reelfs/reelfs/internal/wire"
)

// FileIO adapts a File to the io interfaces with its own offset, every
// call bound to one context. It is not safe for concurrent use (its
// offset is not guarded); the File underneath is.
type FileIO struct {
	f   *File
	ctx context.Context
	off int64
}

var (
	_ io.Reader     = (*FileIO)(nil)
	_ io.Writer     = (*FileIO)(nil)
	_ io.Seeker     = (*FileIO)(nil)
	_ io.ReaderAt   = (*FileIO)(nil)
	_ io.WriterAt   = (*FileIO)(nil)
	_ io.WriterTo   = (*FileIO)(nil)
	_ io.ReaderFrom = (*FileIO)(nil)
)

// Read reads at the current offset and advances it.
func (x *FileIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := x.f.ReadAt(x.ctx, p, x.off)
	x.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil // io.Reader: the next Read reports EOF
	}
	return n, err
}

// Write writes at the current offset (at the end with O_APPEND) and
// advances it past the data.
func (x *FileIO) Write(p []byte) (int, error) {
	at, err := x.f.writeAt(x.ctx, p, x.off)
	if err != nil {
		return 0, err
	}
	x.off = at + int64(len(p))
	return len(p), nil
}

// Seek sets the offset for the next Read or Write.
func (x *FileIO) Seek(offset int64, whence int) (int64, error) {
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = x.off
	case io.SeekEnd:
		base = x.f.Size()
	default:
		return x.off, wire.Errorf(wire.ErrInvalid, "client: seek whence %d", whence)
	}
	if base+offset < 0 {
		return x.off, wire.Errorf(wire.ErrInvalid, "client: seek to negative offset %d", base+offset)
	}
	x.off = base + offset
	return x.off, nil
}

// ReadAt is File.ReadAt with the adapter's context; the offset is untouched.
func (x *FileIO) ReadAt(p []byte, off int64) (int, error) { return x.f.ReadAt(x.ctx, p, off) }

// WriteAt is File.WriteAt with the adapter's context; the offset is untouched.
func (x *FileIO) WriteAt(p []byte, off int64) (int, error) { return x.f.WriteAt(x.ctx, p, off) }

// WriteTo writes the file from the offset to its end into w, one block
// per read, and advances the offset: io.Copy from a FileIO then moves
// 4 MiB per call (and a whole block per fetch) instead of 32 KiB.
func (x *FileIO) WriteTo(w io.Writer) (int64, error) {
	n, err := writeTo(x.ctx, x.f, w, x.off)
	x.off += n
	return n, err
}

// ReadFrom writes what src yields at the offset until io.EOF and
// advances the offset. It reads into a block-sized buffer, so io.Copy
// from a file moves up to a block per write instead of 32 KiB; a slow
// source (a pipe, a socket) is written as it arrives, not held back until
// a block is full.
func (x *FileIO) ReadFrom(src io.Reader) (int64, error) {
	buf := make([]byte, x.f.c.cfg.BlockSize)
	var done int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := x.Write(buf[:n]); werr != nil {
				return done, werr
			}
			done += int64(n)
		}
		switch {
		case err == io.EOF:
			return done, nil
		case err != nil:
			return done, err
		}
	}
}
