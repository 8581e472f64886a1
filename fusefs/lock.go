package fusefs

import (
	"context"
	"strings"
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
	err := n.fsys.locks.set(ctx, n.ino(), owner, flock, lk)
	if err == nil {
		err = n.afterLock(ctx, f, lk)
	}
	return n.fsys.result("setlk", n.ino(), err)
}

func (n *node) Setlkw(ctx context.Context, f fs.FileHandle, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	flock := flags&fuse.FUSE_LK_FLOCK != 0
	noteOwner(f, owner, lk)
	err := n.fsys.locks.wait(ctx, n.ino(), owner, flock, lk)
	if err == nil {
		err = n.afterLock(ctx, f, lk)
	}
	return n.fsys.result("setlkw", n.ino(), err)
}

// afterLock makes a granted lock a point of consistency, as NFS does:
// the holder reads what the previous holder wrote on any mount. The open
// file adopts the newest committed version, and the kernel's pages and
// attributes of the inode are dropped when it moved. (Before an unlock
// nothing is needed here: programs that share a file by locks write it
// back with fsync, and close commits.)
func (n *node) afterLock(ctx context.Context, f fs.FileHandle, lk *fuse.FileLock) error {
	h, ok := f.(*handle)
	if !ok || lk.Typ == syscall.F_UNLCK {
		return nil
	}
	moved, err := h.f.Refresh(ctx)
	if err != nil {
		return err
	}
	n.forgetSiblings()
	if moved {
		n.mu.Lock()
		n.cacheValid = false
		n.mu.Unlock()
		n.NotifyContent(0, 0)
	}
	return nil
}

// forgetSiblings drops the kernel's cached entries of the names next to
// this file that start with its name (db-journal, db-wal next to db):
// files that programs coordinate through this file's locks and that
// another mount may have created or removed since this kernel looked
// them up. Without it an open(O_CREAT) of db-journal could reach the
// journal another mount already deleted.
func (n *node) forgetSiblings() {
	name, parent := n.Parent()
	if parent == nil || name == "" {
		return
	}
	for child := range parent.Children() {
		if child != name && strings.HasPrefix(child, name) {
			parent.NotifyEntry(child)
		}
	}
}

// noteOwner remembers on the handle an owner that takes a lock through it.
func noteOwner(f fs.FileHandle, owner uint64, lk *fuse.FileLock) {
	if h, ok := f.(*handle); ok && lk.Typ != syscall.F_UNLCK {
		h.addOwner(owner)
	}
}
