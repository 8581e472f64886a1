package live

import (
	"context"
	"io"
	"os"

	"github.com/reelfs/reelfs/client"
)

// FS is the part of the filesystem that recording needs: directories,
// and files written at offsets whose every Flush commits what was written
// (readers on other clients see it after the Flush).
type FS interface {
	MkdirAll(ctx context.Context, path string) error
	Create(ctx context.Context, path string) (File, error)
	// Open opens a file for reading (WHEP playback of stored media).
	Open(ctx context.Context, path string) (ReadFile, error)
}

// ReadFile is a file open for reading; Read and Seek serve the MP4
// parser, ReadAt the samples.
type ReadFile interface {
	io.ReadSeeker
	io.ReaderAt
	Close() error
}

// File is a recording file open for writing.
type File interface {
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	// Flush uploads what was written and commits it to the metaserver,
	// so the uploaded blocks are referenced (the collector of uncommitted
	// uploads never sees them) and readers see the new size.
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// FromClient adapts a client SDK connection to FS.
func FromClient(c *client.Client) FS { return clientFS{c} }

type clientFS struct{ c *client.Client }

func (f clientFS) MkdirAll(ctx context.Context, path string) error {
	_, err := f.c.MkdirAll(ctx, path, 0o755)
	return err
}

func (f clientFS) Create(ctx context.Context, path string) (File, error) {
	return f.c.CreatePath(ctx, path, 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
}

func (f clientFS) Open(ctx context.Context, path string) (ReadFile, error) {
	file, err := f.c.OpenPath(ctx, path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	// Reads outlive the request that opened the file: a playback session
	// reads for as long as it lasts, and ends by closing the file.
	ctx = context.WithoutCancel(ctx)
	return clientReadFile{file.IO(ctx), file, ctx}, nil
}

// clientReadFile reads a client File.
type clientReadFile struct {
	*client.FileIO
	f   *client.File
	ctx context.Context
}

func (r clientReadFile) Close() error { return r.f.Close(r.ctx) }

var (
	_ FS       = clientFS{}
	_ File     = (*client.File)(nil)
	_ ReadFile = clientReadFile{}
)
