package httpd

import (
	"context"

	"github.com/reelfs/reelfs/internal/wire"
)

// Namespace is the part of the filesystem the server reads and changes by
// path. *client.Client satisfies it as it is.
type Namespace interface {
	// Resolve walks an absolute path without following symlinks.
	Resolve(ctx context.Context, path string) (wire.Attr, error)
	// ReadDir lists directory ino in name order after name after.
	ReadDir(ctx context.Context, ino uint64, after string, limit int) (wire.ReadDirReply, error)
	// RenamePath moves from to to, replacing a file at to.
	RenamePath(ctx context.Context, from, to string) error
	// RemovePath removes a file or an empty directory (recursive false).
	RemovePath(ctx context.Context, path string, recursive bool) error
}

// FileSystem is everything the server needs: the namespace plus opening
// files. Use FromClient to serve a *client.Client.
type FileSystem interface {
	Namespace
	// Open opens inode ino with os.O_* flags.
	Open(ctx context.Context, ino uint64, flags int) (File, error)
	// ResolveOpen resolves path and, when it names a regular file, opens
	// it read-only in the same step; other nodes come with a nil File.
	ResolveOpen(ctx context.Context, path string) (wire.Attr, File, error)
	// CreatePath creates (or with O_TRUNC truncates) the file at path.
	CreatePath(ctx context.Context, path string, mode uint32, flags int) (File, error)
}

// File is an open file. *client.File satisfies it as it is.
type File interface {
	// Attr is the file's attributes as of open; its Version and Size make
	// the ETag and the length of a response.
	Attr() wire.Attr
	// ReadAt has io.ReaderAt semantics: n < len(p) only with an error.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// WriteAt writes p at off.
	WriteAt(ctx context.Context, p []byte, off int64) (int, error)
	// Close flushes and releases the file; it reports the first write error.
	Close(ctx context.Context) error
}
