package fusefs

import (
	"context"
	"errors"
	"syscall"

	"github.com/reelfs/reelfs/internal/wire"
)

// Errors of this package. Mount and Options.Validate wrap them with %w.
var (
	// ErrBadOptions: a field of Options is out of range.
	ErrBadOptions = errors.New("fusefs: bad options")
	// ErrStaleMount: the mount point is a FUSE mount whose server died
	// ("transport endpoint is not connected"); clear it with LazyUnmount
	// (reelfs umount) before mounting again.
	ErrStaleMount = errors.New("fusefs: stale mount point (transport endpoint is not connected)")
	// ErrNotDir: the mount point, or the cluster's root, is not a directory.
	ErrNotDir = errors.New("fusefs: not a directory")
)

// errnoTable maps the wire sentinels to the errno a POSIX program expects.
// Anything not listed (checksum and I/O failures, an unreachable or
// leaderless cluster, a refused secret) is EIO.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{wire.ErrNotFound, syscall.ENOENT},
	{wire.ErrExist, syscall.EEXIST},
	{wire.ErrNotDir, syscall.ENOTDIR},
	{wire.ErrIsDir, syscall.EISDIR},
	{wire.ErrNotEmpty, syscall.ENOTEMPTY},
	{wire.ErrInvalid, syscall.EINVAL},
	{wire.ErrNameTooLong, syscall.ENAMETOOLONG},
	{wire.ErrPerm, syscall.EPERM},
	{wire.ErrAccess, syscall.EACCES},
	{wire.ErrNoAttr, syscall.ENODATA},
	{wire.ErrRange, syscall.ERANGE},
	{wire.ErrNoSpace, syscall.ENOSPC},
	{wire.ErrNotSupported, syscall.ENOTSUP},
	{context.Canceled, syscall.EINTR},
}

// toErrno is the one place where an error becomes an errno: the FUSE edge.
// A syscall.Errno anywhere in the chain passes through unchanged (the
// package's own checks return those); nil is 0.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
