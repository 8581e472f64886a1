package fusefs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/reelfs/reelfs/client"
)

// handle is one open(2) of a regular file: a client.File. The client keeps
// one state per inode for all handles, so data written through one handle
// is read through any other at once.
type handle struct {
	n        *node
	f        *client.File
	writable bool

	mu sync.Mutex // guards owners
	// owners are the lock owners that took record locks through this
	// handle and have not flushed it since: OFD owners, whose locks go
	// when the handle is released (see lock.go).
	owners map[uint64]struct{}
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

func (n *node) newHandle(f *client.File, flags uint32) *handle {
	h := &handle{n: n, f: f, writable: writable(flags)}
	n.fsys.register(h)
	return h
}

// cacheFlags decides whether the kernel may keep the pages it caches for
// the inode across this open: only when the version the metaserver gave
// the open is the one this mount last released, i.e. nobody changed the
// data in between. Otherwise the kernel drops its pages (no
// FOPEN_KEEP_CACHE) and the attributes it caches are invalidated, so the
// size it reads up to is the current one (close-to-open consistency).
func (n *node) cacheFlags(version uint64, flags uint32) uint32 {
	n.mu.Lock()
	keep := n.cacheValid && n.cacheVersion == version && flags&syscall.O_TRUNC == 0
	n.mu.Unlock()
	if keep {
		return fuse.FOPEN_KEEP_CACHE
	}
	// A negative offset invalidates the attributes only; the pages go
	// because FOPEN_KEEP_CACHE is not set. ENOSYS (no kernel attached,
	// as in unit tests) and ENOENT (the kernel forgot the inode) leave
	// nothing to invalidate.
	n.NotifyContent(-1, 0)
	return 0
}

// released records which version the kernel's pages hold after the last
// close; ok is false when the close failed, so the pages may hold data
// the cluster never got and must not be trusted again.
func (n *node) released(version uint64, ok bool) {
	n.mu.Lock()
	n.cacheVersion, n.cacheValid = version, ok
	n.mu.Unlock()
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f, err := n.fsys.c.Open(ctx, n.ino(), openFlags(flags))
	if err != nil {
		return nil, 0, n.fsys.result("open", n.ino(), err)
	}
	h := n.newHandle(f, flags)
	return h, n.cacheFlags(f.Attr().Version, flags), n.fsys.result("open", n.ino(), nil)
}

// Create makes and opens a regular file. The kernel sends O_EXCL through,
// and the client then fails with EEXIST when the name exists.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, nil, 0, n.fsys.result("create", n.ino(), err)
	}
	uid, gid, mode, err := n.owner(ctx, mode)
	if err != nil {
		return nil, nil, 0, n.fsys.result("create", n.ino(), err)
	}
	f, err := n.fsys.c.Create(ctx, n.ino(), name, mode, uid, gid, openFlags(flags)|syscall.O_CREAT)
	if err != nil {
		return nil, nil, 0, n.fsys.result("create", n.ino(), err)
	}
	a := f.Attr()
	ch := &node{fsys: n.fsys}
	ch.remember(a)
	n.childAdded(a)
	child := n.NewInode(ctx, ch, fsStable(a))
	h := ch.newHandle(f, flags)
	n.fsys.fillEntry(out, a)
	return child, h, 0, n.fsys.result("create", n.ino(), nil)
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	nr, err := h.f.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, h.n.fsys.result("read", h.f.Ino(), err)
	}
	return fuse.ReadResultData(dest[:nr]), h.n.fsys.result("read", h.f.Ino(), nil)
}

// Write hands the bytes to the client's write buffer; with O_APPEND the
// client ignores off and appends at its idea of the end.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.n.sizeMu.RLock()
	nw, err := h.f.WriteAt(ctx, data, off)
	h.n.sizeMu.RUnlock()
	if err != nil {
		return uint32(nw), h.n.fsys.result("write", h.f.Ino(), err)
	}
	return uint32(nw), h.n.fsys.result("write", h.f.Ino(), nil)
}

// Flush runs at every close(2) of a descriptor: it uploads and commits
// what was written, so close reports write errors (ENOSPC, EIO) and
// another mount that opens the file afterwards sees every byte.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if !h.writable {
		return h.n.fsys.result("flush", h.f.Ino(), nil)
	}
	return h.n.fsys.result("flush", h.f.Ino(), h.f.Flush(ctx))
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.fsys.result("fsync", h.f.Ino(), h.f.Sync(ctx))
}

// Release is the last close of the open file description. The kernel
// ignores its result and an interrupted process cannot stop it, so it
// runs without the request's cancellation.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	ino := h.f.Ino()
	h.mu.Lock()
	owners := h.owners
	h.owners = nil
	h.mu.Unlock()
	for o := range owners {
		h.n.fsys.locks.releaseOwner(ino, o, false) // OFD locks
		h.n.fsys.locks.releaseOwner(ino, o, true)  // flock
	}
	err := h.f.Close(context.WithoutCancel(ctx))
	h.n.fsys.unregister(h)
	h.n.released(h.f.Version(), err == nil)
	return h.n.fsys.result("release", ino, err)
}

// fallocKeepSize is FALLOC_FL_KEEP_SIZE of fallocate(2).
const fallocKeepSize = 0x1

// Allocate implements fallocate(2) mode 0 by growing the file (the new
// range reads as zeros, a hole); reelfs does not reserve space ahead, so a
// later write can still fail with ENOSPC. FALLOC_FL_KEEP_SIZE alone has
// nothing to do. Punching holes, zeroing and collapsing ranges are not
// supported.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	ino := h.f.Ino()
	switch {
	case mode == fallocKeepSize:
		return h.n.fsys.result("fallocate", ino, nil)
	case mode != 0:
		return h.n.fsys.result("fallocate", ino, syscall.EOPNOTSUPP)
	case !h.writable:
		return h.n.fsys.result("fallocate", ino, syscall.EBADF)
	case off+size < off || off+size > 1<<63-1:
		return h.n.fsys.result("fallocate", ino, syscall.EFBIG)
	}
	end := int64(off + size)
	h.n.sizeMu.Lock()
	defer h.n.sizeMu.Unlock()
	if end <= h.f.Size() {
		return h.n.fsys.result("fallocate", ino, nil)
	}
	return h.n.fsys.result("fallocate", ino, h.f.Truncate(ctx, end))
}

func (h *handle) addOwner(owner uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.owners == nil {
		h.owners = make(map[uint64]struct{})
	}
	h.owners[owner] = struct{}{}
}

func (h *handle) forgetOwner(owner uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.owners, owner)
}
