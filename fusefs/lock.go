package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var (
	_ fs.NodeGetlker  = (*node)(nil)
	_ fs.NodeSetlker  = (*node)(nil)
	_ fs.NodeSetlkwer = (*node)(nil)
)

// The kernel forwards fcntl(2) record locks (owner: the process's files
// table, or the open file for OFD locks) and flock(2) (flag FUSE_LK_FLOCK,
// owner: the open file) here. They live in the mount's lockTable.

func (n *node) Getlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	got, err := n.fsys.locks.get(n.ino(), owner, lk, flags&fuse.FUSE_LK_FLOCK != 0)
	if err != nil {
		return n.fsys.result("getlk", n.ino(), err)
	}
	*out = got
	return n.fsys.result("getlk", n.ino(), nil)
}

func (n *node) Setlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	flock := n.noteFlock(f, owner, lk, flags)
	return n.fsys.result("setlk", n.ino(), n.fsys.locks.set(n.ino(), owner, lk, flock))
}

func (n *node) Setlkw(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	flock := n.noteFlock(f, owner, lk, flags)
	return n.fsys.result("setlkw", n.ino(), n.fsys.locks.wait(ctx, n.ino(), owner, lk, flock))
}

// noteFlock remembers a flock owner on its handle so that releasing the
// handle drops the lock, and reports whether the request is a flock.
func (n *node) noteFlock(f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) bool {
	flock := flags&fuse.FUSE_LK_FLOCK != 0
	if h, ok := f.(*handle); ok && flock && lk.Typ != syscall.F_UNLCK {
		h.addFlockOwner(owner)
	}
	return flock
}
