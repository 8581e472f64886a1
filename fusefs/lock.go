package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Record locks. The kernel forwards fcntl(2) locks here with an owner: the
// process's file table for classic POSIX locks, the open file for OFD
// locks. Because the kernel keeps no copy of forwarded locks, it cannot
// drop them at close either; it tells the filesystem instead:
//
//   - every close(2) sends FLUSH with the closing process's owner, and
//     POSIX says that closing any descriptor of a file drops all of that
//     process's locks on it (flushOwner);
//   - OFD locks go with the open file, i.e. at RELEASE (the handle keeps
//     the owners that locked through it and were not flushed since).
//
// go-fuse's node API drops FLUSH's lock owner, so lockFS catches FLUSH on
// its way in; with Options.ExternalNodeID the node id it carries is the
// reelfs inode number.
//
// flock(2) is forwarded too (the FLOCK_LOCKS capability is on) as a
// whole-file lock of the open file, so it excludes other mounts; it goes
// at RELEASE of the open file or at LOCK_UN. The metaserver grants every
// lock (locktable.go), for all mounts of the cluster.

var (
	_ fs.NodeGetlker  = (*node)(nil)
	_ fs.NodeSetlker  = (*node)(nil)
	_ fs.NodeSetlkwer = (*node)(nil)
)

// lockFS is the go-fuse raw filesystem with FLUSH's lock owner honoured.
type lockFS struct {
	fuse.RawFileSystem
	fsys *filesystem
}

func (l *lockFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	l.fsys.flushOwner(in.NodeId, in.LockOwner)
	return l.RawFileSystem.Flush(cancel, in)
}

// flushOwner drops the record locks of a process that closed a descriptor
// of ino, and forgets it on the handles so that their release does not
// drop locks the process takes later.
func (f *filesystem) flushOwner(ino, owner uint64) {
	f.locks.releaseOwner(ino, owner, false)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.open[ino] {
		h.forgetOwner(owner)
	}
}

func (n *node) Getlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	if flags&fuse.FUSE_LK_FLOCK != 0 {
		return n.fsys.result("getlk", n.ino(), syscall.ENOTSUP)
	}
	got, err := n.fsys.locks.get(ctx, n.ino(), owner, lk)
	if err != nil {
		return n.fsys.result("getlk", n.ino(), err)
	}
	*out = got
	return n.fsys.result("getlk", n.ino(), nil)
}

func (n *node) Setlk(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	flock := flags&fuse.FUSE_LK_FLOCK != 0
	noteOwner(f, owner, lk)
	return n.fsys.result("setlk", n.ino(), n.fsys.locks.set(ctx, n.ino(), owner, flock, lk))
}

func (n *node) Setlkw(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	flock := flags&fuse.FUSE_LK_FLOCK != 0
	noteOwner(f, owner, lk)
	return n.fsys.result("setlkw", n.ino(), n.fsys.locks.wait(ctx, n.ino(), owner, flock, lk))
}

// noteOwner remembers on the handle an owner that takes a lock through it.
func noteOwner(f fs.FileHandle, owner uint64, lk *fuse.FileLock) {
	if h, ok := f.(*handle); ok && lk.Typ != syscall.F_UNLCK {
		h.addOwner(owner)
	}
}
