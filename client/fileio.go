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
	_ io.Reader   = (*FileIO)(nil)
	_ io.Writer   = (*FileIO)(nil)
	_ io.Seeker   = (*FileIO)(nil)
	_ io.ReaderAt = (*FileIO)(nil)
	_ io.WriterAt = (*FileIO)(nil)
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
