package fusefs

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/reelfs/reelfs/internal/wire"
)

// node is one reelfs inode as the kernel knows it. Its fs.Inode carries
// the reelfs inode number as StableAttr.Ino, so st_ino is the reelfs
// inode and hard links share one node.
type node struct {
	fs.Inode
	fsys *filesystem

	mu sync.Mutex // guards the fields below
	// attr is the inode's attributes as last seen, for the setgid
	// inheritance of new children and for fstat of a removed directory;
	// known says whether they were seen at all.
	attr  wire.Attr
	known bool
	seen  time.Time // when attr was read
	// cacheVersion is the inode version the kernel's page cache holds
	// for this inode, recorded when this mount last released it;
	// cacheValid says whether there is such a record.
	cacheVersion uint64
	cacheValid   bool

	// sizeMu makes fallocate's "grow to at least" atomic with respect
	// to this mount's writes: writes hold it shared, Allocate exclusive.
	sizeMu sync.RWMutex
}

var (
	_ fs.InodeEmbedder      = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
)

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// remember keeps what new children need to know about their parent.
func (n *node) remember(a wire.Attr) {
	n.mu.Lock()
	n.attr, n.known, n.seen = a, true, time.Now()
	n.mu.Unlock()
}

// noXattrs reports whether attributes read within the attribute timeout
// say the inode has no extended attributes, so a lookup of one can be
// answered here: like any cached attribute, an xattr set through another
// mount shows after at most the timeout.
func (n *node) noXattrs() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.known && n.attr.Flags&wire.AttrHasXattrs == 0 && time.Since(n.seen) < n.fsys.attrTimeout
}

// fresh returns the attributes read within the attribute timeout, with
// this mount's own changes applied (childAdded), if there are such.
func (n *node) fresh() (wire.Attr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr, n.known && time.Since(n.seen) < n.fsys.attrTimeout
}

// childAdded applies to this directory's cached attributes what the
// metaserver did to them when it added child a in the same transaction:
// mtime and ctime become the child's ctime, a subdirectory adds a link.
// The kernel drops a directory's attributes after every create in it
// (default_permissions then needs them again for the next one); with this
// the next GETATTR is answered here instead of by the metaserver. seen is
// left alone so changes from other mounts still show within the timeout.
func (n *node) childAdded(a wire.Attr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.known || a.Ctime < n.attr.Mtime { // an existing file a create raced with: nothing changed here
		return
	}
	n.attr.Mtime, n.attr.Ctime = a.Ctime, a.Ctime
	if a.IsDir() {
		n.attr.Nlink++
	}
}

// childRemoved takes the attributes the metaserver answered a removal in
// this directory with (a: the directory as the removal left them, Ino 0
// when it did not say). The kernel drops a directory's attributes after
// every removal in it and default_permissions needs them again for the
// next one, so without these every removal cost a GETATTR as well; with
// several threads removing in one directory, those GETATTRs ran beside
// the removals and each waited for a metaserver round trip. The
// attributes are as current as a GETATTR's answer. An answer older than
// what the node holds (two removals answered out of order, or a create
// applied after it) is dropped: the node then stays unknown until asked.
func (n *node) childRemoved(a wire.Attr) {
	if a.Ino != n.ino() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.known && a.Ctime < n.attr.Ctime {
		return
	}
	n.attr, n.known, n.seen = a, true, time.Now()
}

// changed forgets that the cached attributes are current: the directory
// changed in a way this mount cannot apply exactly (a rename), or is
// about to (a removal, until its answer comes).
func (n *node) changed() {
	n.mu.Lock()
	n.seen = time.Time{}
	n.mu.Unlock()
}

// markXattrs records that the inode now has an extended attribute.
func (n *node) markXattrs() {
	n.mu.Lock()
	n.attr.Flags |= wire.AttrHasXattrs
	n.mu.Unlock()
}

// newChild makes the node for the child name with attributes a and fills
// out. When the kernel already knows the inode, go-fuse keeps the known
// node and drops the new one after this returns (NewInode always makes a
// new one), so the known node, which serves every later request, gets a
// too: else the attributes it saw at its create or last lookup go stale
// and each getxattr of the "no xattrs" answer that ls -l asks for per
// file (security.selinux, POSIX ACLs) costs a metaserver call.
func (n *node) newChild(ctx context.Context, name string, a wire.Attr, out *fuse.EntryOut) *fs.Inode {
	ch := &node{fsys: n.fsys}
	ch.remember(a)
	n.fsys.fillEntry(out, a)
	id := fsStable(a)
	if old := n.GetChild(name); old != nil && old.StableAttr() == id {
		if known, ok := old.Operations().(*node); ok {
			known.remember(a)
		}
	}
	return n.NewInode(ctx, ch, id)
}

// fsStable is the identity of an inode for go-fuse: its type and number.
func fsStable(a wire.Attr) fs.StableAttr {
	return fs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino}
}

// owner is the uid, gid and mode of a new child made by the caller: the
// caller's ids, except that in a setgid directory the child gets the
// directory's group, and a new directory inherits the setgid bit. A
// caller outside that group (and not root) cannot create a setgid file.
func (n *node) owner(ctx context.Context, mode uint32) (uid, gid, outMode uint32, err error) {
	uid, gid = caller(ctx)
	n.mu.Lock()
	pmode, pgid, known := n.attr.Mode, n.attr.Gid, n.known
	n.mu.Unlock()
	if !known {
		a, err := n.fsys.c.GetAttr(ctx, n.ino())
		if err != nil {
			return 0, 0, 0, err
		}
		n.remember(a)
		pmode, pgid = a.Mode, a.Gid
	}
	if pmode&syscall.S_ISGID == 0 {
		return uid, gid, mode, nil
	}
	switch {
	case mode&syscall.S_IFMT == syscall.S_IFDIR:
		mode |= syscall.S_ISGID
	case mode&syscall.S_ISGID != 0 && uid != 0 && gid != pgid:
		mode &^= syscall.S_ISGID
	}
	return uid, pgid, mode, nil
}

func nameErr(name string) error {
	if len(name) > wire.MaxNameLen {
		return syscall.ENAMETOOLONG
	}
	return nil
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, n.fsys.result("lookup", n.ino(), err)
	}
	a, err := n.fsys.c.Lookup(ctx, n.ino(), name)
	if err != nil {
		return nil, n.fsys.result("lookup", n.ino(), err)
	}
	return n.newChild(ctx, name, a, out), n.fsys.result("lookup", n.ino(), nil)
}

// Getattr reads the attributes from the metaserver (the client overlays
// the size of unflushed writes). A removed directory that the kernel
// still holds (an open descriptor, a cwd) keeps its last attributes with
// nlink 0, as on a local filesystem; removed files that are open live on
// as orphans in the metaserver and need no such help.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.IsDir() { // files go to the client, which knows unflushed writes
		if a, ok := n.fresh(); ok {
			n.fsys.fillAttr(&out.Attr, a)
			return n.fsys.result("getattr", n.ino(), nil)
		}
	}
	a, err := n.fsys.c.GetAttr(ctx, n.ino())
	if errors.Is(err, wire.ErrNotFound) && n.IsDir() {
		n.mu.Lock()
		last, known := n.attr, n.known
		n.mu.Unlock()
		if known {
			last.Nlink = 0
			n.fsys.fillAttr(&out.Attr, last)
			return n.fsys.result("getattr", n.ino(), nil)
		}
	}
	if err != nil {
		return n.fsys.result("getattr", n.ino(), err)
	}
	n.remember(a)
	n.fsys.fillAttr(&out.Attr, a)
	if a.IsRegular() && n.fsys.followed(a.Ino) {
		// A file open here only for reading may be growing elsewhere and
		// followed by a program that polls once per attribute timeout
		// (tail -f polls every second, as long as the default timeout).
		// Attributes that expire exactly at the next poll are still valid
		// there about half the time, and the poll misses a whole second of
		// growth; half the timeout makes every poll ask.
		out.SetTimeout(n.fsys.attrTimeout / 2)
	}
	return n.fsys.result("getattr", n.ino(), nil)
}

// Setattr changes mode, owner, size and times. A size change through an
// open handle (ftruncate, open with O_TRUNC) goes through that File, so
// the dirty buffer it shares with the other handles is cut as well; a
// path truncate goes to the client, which does the same for inodes open
// in this mount.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ino := n.ino()
	req := wire.SetAttrReq{Ino: ino}
	if m, ok := in.GetMode(); ok {
		req.Valid |= wire.SetMode
		req.Mode = m
	}
	if u, ok := in.GetUID(); ok {
		req.Valid |= wire.SetUid
		req.Uid = u
	}
	if g, ok := in.GetGID(); ok {
		req.Valid |= wire.SetGid
		req.Gid = g
	}
	now := time.Now().UnixNano()
	if in.Valid&fuse.FATTR_ATIME != 0 {
		req.Valid |= wire.SetAtime
		req.Atime = joinTime(in.Atime, in.Atimensec)
		if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
			req.Valid |= wire.SetAtimeNow
			req.Atime = now
		}
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		req.Valid |= wire.SetMtime
		req.Mtime = joinTime(in.Mtime, in.Mtimensec)
		if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			req.Valid |= wire.SetMtimeNow
			req.Mtime = now
		}
	}
	if in.Valid&fuse.FATTR_CTIME != 0 {
		req.Valid |= wire.SetCtime
		req.Ctime = joinTime(in.Ctime, in.Ctimensec)
	}
	if size, ok := in.GetSize(); ok {
		if size > 1<<63-1 {
			return n.fsys.result("setattr", ino, syscall.EFBIG)
		}
		if h, _ := f.(*handle); h != nil && h.writable {
			if err := h.f.Truncate(ctx, int64(size)); err != nil {
				return n.fsys.result("setattr", ino, err)
			}
		} else {
			req.Valid |= wire.SetSize
			req.Size = size
		}
	}
	var a wire.Attr
	var err error
	if req.Valid != 0 {
		a, err = n.fsys.c.SetAttr(ctx, req)
	} else {
		a, err = n.fsys.c.GetAttr(ctx, ino)
	}
	if err != nil {
		return n.fsys.result("setattr", ino, err)
	}
	n.remember(a)
	n.fsys.fillAttr(&out.Attr, a)
	return n.fsys.result("setattr", ino, nil)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, n.fsys.result("mkdir", n.ino(), err)
	}
	uid, gid, mode, err := n.owner(ctx, mode&wire.ModePerm|wire.ModeDir)
	if err != nil {
		return nil, n.fsys.result("mkdir", n.ino(), err)
	}
	a, err := n.fsys.c.Mkdir(ctx, n.ino(), name, mode, uid, gid)
	if err != nil {
		return nil, n.fsys.result("mkdir", n.ino(), err)
	}
	n.childAdded(a)
	return n.newChild(ctx, name, a, out), n.fsys.result("mkdir", n.ino(), nil)
}

// Mknod makes FIFOs, sockets and (for a caller with CAP_MKNOD, which the
// kernel checks) device nodes. The kernel serves them itself once they
// exist; reelfs only stores the inode.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, n.fsys.result("mknod", n.ino(), err)
	}
	uid, gid, mode, err := n.owner(ctx, mode)
	if err != nil {
		return nil, n.fsys.result("mknod", n.ino(), err)
	}
	a, err := n.fsys.c.Mknod(ctx, n.ino(), name, mode, rdev, uid, gid)
	if err != nil {
		return nil, n.fsys.result("mknod", n.ino(), err)
	}
	n.childAdded(a)
	return n.newChild(ctx, name, a, out), n.fsys.result("mknod", n.ino(), nil)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, n.fsys.result("symlink", n.ino(), err)
	}
	uid, gid, _, err := n.owner(ctx, wire.ModeSymlink|0o777)
	if err != nil {
		return nil, n.fsys.result("symlink", n.ino(), err)
	}
	a, err := n.fsys.c.Symlink(ctx, n.ino(), name, target, uid, gid)
	if err != nil {
		return nil, n.fsys.result("symlink", n.ino(), err)
	}
	n.childAdded(a)
	return n.newChild(ctx, name, a, out), n.fsys.result("symlink", n.ino(), nil)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.fsys.c.Readlink(ctx, n.ino())
	if err != nil {
		return nil, n.fsys.result("readlink", n.ino(), err)
	}
	return []byte(target), n.fsys.result("readlink", n.ino(), nil)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if err := nameErr(name); err != nil {
		return nil, n.fsys.result("link", n.ino(), err)
	}
	t, ok := target.(*node)
	if !ok {
		return nil, n.fsys.result("link", n.ino(), syscall.EXDEV)
	}
	a, err := n.fsys.c.Link(ctx, t.ino(), n.ino(), name)
	if err != nil {
		return nil, n.fsys.result("link", n.ino(), err)
	}
	n.childAdded(a)
	t.remember(a)
	n.fsys.fillEntry(out, a)
	return t.EmbeddedInode(), n.fsys.result("link", n.ino(), nil)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.changed()
	a, err := n.fsys.c.UnlinkAttr(ctx, n.ino(), name)
	if err == nil {
		n.childRemoved(a)
	}
	return n.fsys.result("unlink", n.ino(), err)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.changed()
	a, err := n.fsys.c.RmdirAttr(ctx, n.ino(), name)
	if err == nil {
		n.childRemoved(a)
	}
	return n.fsys.result("rmdir", n.ino(), err)
}

// renameWhiteout is RENAME_WHITEOUT of renameat2(2), which only overlay
// filesystems need; reelfs has no whiteouts.
const renameWhiteout = 1 << 2

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if err := nameErr(newName); err != nil {
		return n.fsys.result("rename", n.ino(), err)
	}
	np, ok := newParent.(*node)
	if !ok {
		return n.fsys.result("rename", n.ino(), syscall.EXDEV)
	}
	if flags&renameWhiteout != 0 || flags&^(wire.RenameNoReplace|wire.RenameExchange|renameWhiteout) != 0 {
		return n.fsys.result("rename", n.ino(), syscall.EINVAL)
	}
	n.changed()
	np.changed()
	err := n.fsys.c.Rename(ctx, n.ino(), name, np.ino(), newName, flags)
	return n.fsys.result("rename", n.ino(), err)
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.fsys.c.StatFS(ctx)
	if err != nil {
		return n.fsys.result("statfs", n.ino(), err)
	}
	out.Bsize = statfsBlock
	out.Frsize = statfsBlock
	out.Blocks = st.Total / statfsBlock
	out.Bfree = st.Free / statfsBlock
	out.Bavail = out.Bfree
	out.Files = st.Files + statfsFreeInodes
	out.Ffree = statfsFreeInodes
	out.NameLen = wire.MaxNameLen
	return n.fsys.result("statfs", n.ino(), nil)
}
