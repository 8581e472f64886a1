package metaserver

import (
	"bytes"
	"context"
	"strings"

	"github.com/reelfs/reelfs/internal/wire"
)

// Limits of names and values.
const (
	maxTarget     = 4096     // longest symlink target (PATH_MAX)
	maxXattrName  = 255      // longest xattr name (XATTR_NAME_MAX)
	maxXattrValue = 64 << 10 // largest xattr value (XATTR_SIZE_MAX)
	maxSession    = 256      // longest session id
	maxDepth      = 1 << 16  // deepest directory walk before the tree is called corrupt
)

// checkName validates one path component.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return errInval("name %q", name)
	case strings.IndexByte(name, '/') >= 0 || strings.IndexByte(name, 0) >= 0:
		return errInval("name %q contains '/' or NUL", name)
	case len(name) > wire.MaxNameLen:
		return wire.Errorf(wire.ErrNameTooLong, "name of %d bytes", len(name))
	}
	return nil
}

func checkSession(s string, required bool) error {
	if s == "" && required {
		return errInval("missing session")
	}
	if len(s) > maxSession {
		return errInval("session id of %d bytes", len(s))
	}
	return nil
}

// ---- reads ----

func (c *core) getAttr(_ context.Context, req *wire.InoReq) (wire.Attr, error) {
	n, err := loadInode(c.db, req.Ino)
	if err != nil {
		return wire.Attr{}, err
	}
	return n.Attr, nil
}

func (c *core) lookup(_ context.Context, req *wire.LookupReq) (wire.Attr, error) {
	if err := checkName(req.Name); err != nil {
		return wire.Attr{}, err
	}
	return lookupAttr(c.db, req.Parent, req.Name)
}

// lookupAttr is parent/name's attributes. The dentry is read first (one
// read on the common path); only a miss looks at the parent to tell ENOENT
// from ENOTDIR.
func lookupAttr(r reader, parent uint64, name string) (wire.Attr, error) {
	ino, err := lookupDentry(r, parent, name)
	if err != nil {
		return wire.Attr{}, err
	}
	if ino == 0 {
		p, err := loadInode(r, parent)
		if err != nil {
			return wire.Attr{}, err
		}
		if !p.IsDir() {
			return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "inode %d is not a directory", parent)
		}
		return wire.Attr{}, errNoEnt("%q in directory %d", name, parent)
	}
	n, err := loadInode(r, ino)
	if err != nil {
		return wire.Attr{}, err
	}
	return n.Attr, nil
}

// resolve walks an absolute path from the root without following symlinks.
func (c *core) resolve(ctx context.Context, req *wire.ResolveReq) (wire.Attr, error) {
	p := req.Path
	if !strings.HasPrefix(p, "/") {
		return wire.Attr{}, errInval("path %q is not absolute", p)
	}
	snap, err := c.db.GetSnapshot()
	if err != nil {
		return wire.Attr{}, ioError("resolve", err)
	}
	defer snap.Release()
	cur, err := loadInode(snap, wire.RootIno)
	if err != nil {
		return wire.Attr{}, err
	}
	rest := p[1:]
	trailing := false
	for rest != "" {
		name := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name, rest = rest[:i], rest[i+1:]
			trailing = rest == ""
		} else {
			rest = ""
		}
		if err := checkName(name); err != nil {
			return wire.Attr{}, wire.Errorf(wire.ErrInvalid, "path %q: %v", p, err)
		}
		if !cur.IsDir() {
			return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "path %q: inode %d is not a directory", p, cur.Ino)
		}
		ino, err := lookupDentry(snap, cur.Ino, name)
		if err != nil {
			return wire.Attr{}, err
		}
		if ino == 0 {
			return wire.Attr{}, errNoEnt("path %q: no %q", p, name)
		}
		if cur, err = loadInode(snap, ino); err != nil {
			return wire.Attr{}, err
		}
	}
	if trailing && !cur.IsDir() {
		return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "path %q: not a directory", p)
	}
	if req.Open && cur.IsRegular() {
		// open reads the inode again under the lock that registers the
		// open: an unlink since the snapshot answers ENOENT.
		return c.open(ctx, &wire.OpenReq{Ino: cur.Ino, Session: req.Session})
	}
	return cur.Attr, nil
}

func (c *core) readlink(_ context.Context, req *wire.InoReq) (wire.ReadlinkReply, error) {
	// Inode and target come from one snapshot: a concurrent unlink deletes
	// both in one batch, so the reader sees both or neither (ENOENT).
	snap, err := c.db.GetSnapshot()
	if err != nil {
		return wire.ReadlinkReply{}, ioError("readlink", err)
	}
	defer snap.Release()
	n, err := loadInode(snap, req.Ino)
	if err != nil {
		return wire.ReadlinkReply{}, err
	}
	if !n.IsSymlink() {
		return wire.ReadlinkReply{}, errInval("inode %d is not a symlink", req.Ino)
	}
	v, ok, err := getOpt(snap, keySymlink(req.Ino))
	if err != nil {
		return wire.ReadlinkReply{}, ioError("readlink", err)
	}
	if !ok {
		return wire.ReadlinkReply{}, ioError("readlink", errCorruptf("symlink %d has no target", req.Ino))
	}
	return wire.ReadlinkReply{Target: string(v)}, nil
}

// readDir lists a page of entries in name order with their attributes,
// from one snapshot so a page is consistent.
func (c *core) readDir(_ context.Context, req *wire.ReadDirReq) (wire.ReadDirReply, error) {
	limit := req.Limit
	switch {
	case limit < 0:
		return wire.ReadDirReply{}, errInval("limit %d", limit)
	case limit == 0 || limit > c.readDirLimit:
		limit = c.readDirLimit
	}
	snap, err := c.db.GetSnapshot()
	if err != nil {
		return wire.ReadDirReply{}, ioError("readdir", err)
	}
	defer snap.Release()
	d, err := loadInode(snap, req.Ino)
	if err != nil {
		return wire.ReadDirReply{}, err
	}
	if !d.IsDir() {
		return wire.ReadDirReply{}, wire.Errorf(wire.ErrNotDir, "inode %d is not a directory", req.Ino)
	}
	rng := prefix64(pDentry, req.Ino)
	if req.After != "" {
		// The first key after After: After itself followed by NUL.
		rng.Start = append(keyDentry(req.Ino, req.After), 0)
	}
	it := snap.NewIterator(rng, nil)
	defer it.Release()
	reply := wire.ReadDirReply{Entries: make([]wire.DirEntry, 0, min(limit, 64))}
	for it.Next() {
		if len(reply.Entries) == limit {
			reply.More = true
			break
		}
		ino, err := decodeDentry(it.Value())
		if err != nil {
			return wire.ReadDirReply{}, ioError("readdir", err)
		}
		n, err := loadInode(snap, ino)
		if err != nil {
			return wire.ReadDirReply{}, ioError("readdir", err)
		}
		reply.Entries = append(reply.Entries, wire.DirEntry{Name: string(it.Key()[9:]), Attr: n.Attr})
	}
	if err := it.Error(); err != nil {
		return wire.ReadDirReply{}, ioError("readdir", err)
	}
	return reply, nil
}

func (c *core) statFS(_ context.Context) wire.StatFS {
	c.mu.Lock()
	inodes := c.ctr.inodes
	c.mu.Unlock()
	return statFS(c.tracker.groups(c.clock()), inodes)
}

// ---- creation ----

// createMode is the full mode (type and permission bits) of the node a
// create-like op makes.
func createMode(op string, req *wire.CreateReq) (uint32, error) {
	typ := req.Mode & wire.ModeType
	perm := req.Mode & wire.ModePerm
	switch op {
	case wire.OpMkdir:
		if typ != 0 && typ != wire.ModeDir {
			return 0, errInval("mkdir with mode %o", req.Mode)
		}
		typ = wire.ModeDir
	case wire.OpSymlink:
		if typ != 0 && typ != wire.ModeSymlink {
			return 0, errInval("symlink with mode %o", req.Mode)
		}
		typ = wire.ModeSymlink
		if perm == 0 {
			perm = 0o777
		}
	default: // create: regular file, mknod, or a symlink when Target says so
		switch typ {
		case 0:
			typ = wire.ModeRegular
		case wire.ModeRegular, wire.ModeFIFO, wire.ModeSocket, wire.ModeChar, wire.ModeBlock, wire.ModeSymlink:
		default:
			return 0, errInval("create with mode %o", req.Mode)
		}
	}
	if typ == wire.ModeSymlink {
		if req.Target == "" {
			return 0, errInval("symlink without a target")
		}
		if len(req.Target) > maxTarget {
			return 0, wire.Errorf(wire.ErrNameTooLong, "symlink target of %d bytes", len(req.Target))
		}
		if strings.IndexByte(req.Target, 0) >= 0 {
			return 0, errInval("symlink target contains NUL")
		}
	} else if req.Target != "" {
		return 0, errInval("target given for mode %o", typ|perm)
	}
	if req.Open && typ != wire.ModeRegular {
		return 0, errInval("open of a new node of mode %o", typ|perm)
	}
	return typ | perm, nil
}

// create makes a directory (mkdir), regular file or special node (create)
// or symlink (symlink, or create with a symlink mode and a target).
func (c *core) create(ctx context.Context, op string, req *wire.CreateReq) (wire.Attr, error) {
	if err := checkName(req.Name); err != nil {
		return wire.Attr{}, err
	}
	mode, err := createMode(op, req)
	if err != nil {
		return wire.Attr{}, err
	}
	if err := checkSession(req.Session, req.Open); err != nil {
		return wire.Attr{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(op)
	t.tag(ctx)
	parent, err := t.dir(req.Parent)
	if err != nil {
		return wire.Attr{}, err
	}
	old, err := t.lookup(parent.Ino, req.Name)
	if err != nil {
		return wire.Attr{}, err
	}
	if old != 0 {
		if op != wire.OpCreate || req.Exclusive || mode&wire.ModeType != wire.ModeRegular {
			return wire.Attr{}, wire.Errorf(wire.ErrExist, "%q in directory %d", req.Name, req.Parent)
		}
		n, err := t.inode(old)
		if err != nil {
			return wire.Attr{}, err
		}
		switch {
		case n.IsDir():
			return wire.Attr{}, wire.Errorf(wire.ErrIsDir, "%q in directory %d is a directory", req.Name, req.Parent)
		case !n.IsRegular():
			return wire.Attr{}, wire.Errorf(wire.ErrExist, "%q in directory %d", req.Name, req.Parent)
		}
		if req.Open {
			c.addOpen(req.Session, n.Ino)
		}
		return n.Attr, nil
	}

	n := &inode{}
	n.Ino = t.newIno()
	n.Mode = mode
	n.Uid, n.Gid = req.Uid, req.Gid
	n.Atime, n.Mtime, n.Ctime = t.now, t.now, t.now
	n.Version = 1
	n.Nlink = 1
	switch mode & wire.ModeType {
	case wire.ModeDir:
		n.Nlink = 2
		n.Parent = parent.Ino
		parent.Nlink++
	case wire.ModeSymlink:
		n.Size = uint64(len(req.Target))
		t.b.Put(keySymlink(n.Ino), []byte(req.Target))
	case wire.ModeChar, wire.ModeBlock:
		n.Rdev = req.Rdev
	case wire.ModeRegular:
		n.Flags |= wire.AttrStored
	}
	t.add(n)
	t.b.Put(keyDentry(parent.Ino, req.Name), encodeDentry(n.Ino, mode))
	parent.Mtime, parent.Ctime = t.now, t.now
	t.save(parent)
	if err := t.commit(); err != nil {
		return wire.Attr{}, err
	}
	if req.Open {
		c.addOpen(req.Session, n.Ino)
	}
	return n.Attr, nil
}

func (c *core) link(ctx context.Context, req *wire.LinkReq) (wire.Attr, error) {
	if err := checkName(req.NewName); err != nil {
		return wire.Attr{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpLink)
	t.tag(ctx)
	n, err := t.inode(req.Ino)
	if err != nil {
		return wire.Attr{}, err
	}
	if n.IsDir() {
		return wire.Attr{}, wire.Errorf(wire.ErrPerm, "hard link to directory %d", req.Ino)
	}
	if n.Nlink == 0 {
		return wire.Attr{}, errNoEnt("inode %d was unlinked", req.Ino)
	}
	parent, err := t.dir(req.NewParent)
	if err != nil {
		return wire.Attr{}, err
	}
	old, err := t.lookup(parent.Ino, req.NewName)
	if err != nil {
		return wire.Attr{}, err
	}
	if old != 0 {
		return wire.Attr{}, wire.Errorf(wire.ErrExist, "%q in directory %d", req.NewName, req.NewParent)
	}
	t.b.Put(keyDentry(parent.Ino, req.NewName), encodeDentry(n.Ino, n.Mode))
	n.Nlink++
	n.Ctime = t.now
	t.save(n)
	parent.Mtime, parent.Ctime = t.now, t.now
	t.save(parent)
	if err := t.commit(); err != nil {
		return wire.Attr{}, err
	}
	return n.Attr, nil
}

// ---- removal ----

func (c *core) unlink(ctx context.Context, req *wire.UnlinkReq) error {
	_, err := c.unlinkReply(ctx, req)
	return err
}

// unlinkReply is unlink, answered with the parent's new attributes.
func (c *core) unlinkReply(ctx context.Context, req *wire.UnlinkReq) (wire.UnlinkReply, error) {
	var none wire.UnlinkReply
	if err := checkName(req.Name); err != nil {
		return none, err
	}
	if err := checkSession(req.Session, false); err != nil {
		return none, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpUnlink)
	t.tag(ctx)
	parent, err := t.dir(req.Parent)
	if err != nil {
		return none, err
	}
	ino, err := t.lookup(parent.Ino, req.Name)
	if err != nil {
		return none, err
	}
	if ino == 0 {
		return none, errNoEnt("%q in directory %d", req.Name, req.Parent)
	}
	n, err := t.inode(ino)
	if err != nil {
		return none, err
	}
	if n.IsDir() {
		return none, wire.Errorf(wire.ErrIsDir, "unlink of directory %q", req.Name)
	}
	t.b.Delete(keyDentry(parent.Ino, req.Name))
	parent.Mtime, parent.Ctime = t.now, t.now
	t.save(parent)
	if err := t.dropLink(n, req.Session); err != nil {
		return none, err
	}
	if err := t.commit(); err != nil {
		return none, err
	}
	return wire.UnlinkReply{Parent: parent.Attr}, nil
}

func (c *core) rmdir(ctx context.Context, req *wire.UnlinkReq) error {
	_, err := c.rmdirReply(ctx, req)
	return err
}

// rmdirReply is rmdir, answered with the parent's new attributes.
func (c *core) rmdirReply(ctx context.Context, req *wire.UnlinkReq) (wire.UnlinkReply, error) {
	var none wire.UnlinkReply
	if err := checkName(req.Name); err != nil {
		return none, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpRmdir)
	t.tag(ctx)
	parent, err := t.dir(req.Parent)
	if err != nil {
		return none, err
	}
	ino, err := t.lookup(parent.Ino, req.Name)
	if err != nil {
		return none, err
	}
	if ino == 0 {
		return none, errNoEnt("%q in directory %d", req.Name, req.Parent)
	}
	if ino == wire.RootIno {
		return none, errInval("rmdir of the root")
	}
	n, err := t.dir(ino)
	if err != nil {
		return none, err
	}
	if err := t.checkEmpty(n); err != nil {
		return none, err
	}
	t.b.Delete(keyDentry(parent.Ino, req.Name))
	parent.Nlink--
	parent.Mtime, parent.Ctime = t.now, t.now
	t.save(parent)
	if err := t.destroy(n); err != nil {
		return none, err
	}
	if err := t.commit(); err != nil {
		return none, err
	}
	return wire.UnlinkReply{Parent: parent.Attr}, nil
}

// checkEmpty is ENOTEMPTY unless directory d has no entries.
func (t *txn) checkEmpty(d *inode) error {
	it := t.c.db.NewIterator(prefix64(pDentry, d.Ino), nil)
	defer it.Release()
	if it.First() {
		return wire.Errorf(wire.ErrNotEmpty, "directory %d", d.Ino)
	}
	return ioError("read directory", it.Error())
}

// dropLink removes one link of a non-directory whose dentry the caller
// deletes. The last link either deletes the inode or, when a live session
// holds it open, keeps it as an orphan until the last release.
func (t *txn) dropLink(n *inode, session string) error {
	if n.Nlink > 0 {
		n.Nlink--
	}
	n.Ctime = t.now
	if n.Nlink > 0 {
		t.save(n)
		return nil
	}
	if t.c.keepsOpen(n.Ino, session) {
		t.save(n)
		t.b.Put(keyOrphan(n.Ino), encodeI64(t.now))
		t.orphanAdd = append(t.orphanAdd, n.Ino)
		return nil
	}
	return t.destroy(n)
}

// destroy deletes an inode with everything hanging off it: xattrs, symlink
// target, orphan mark, and the chunks, whose blocks go to the deletion
// queue (their reverse-index entries go with them).
func (t *txn) destroy(n *inode) error {
	if n.IsRegular() {
		it := t.c.db.NewIterator(prefix64(pChunk, n.Ino), nil)
		for it.Next() {
			if err := t.freeChunk(it.Key(), it.Value()); err != nil {
				it.Release()
				return err
			}
		}
		it.Release()
		if err := it.Error(); err != nil {
			return ioError("read chunks", err)
		}
	}
	it := t.c.db.NewIterator(prefix64(pXattr, n.Ino), nil)
	for it.Next() {
		t.b.Delete(append([]byte(nil), it.Key()...))
	}
	it.Release()
	if err := it.Error(); err != nil {
		return ioError("read xattrs", err)
	}
	if n.IsSymlink() {
		t.b.Delete(keySymlink(n.Ino))
	}
	if _, ok := t.c.orphans[n.Ino]; ok {
		t.b.Delete(keyOrphan(n.Ino))
		t.orphanDel = append(t.orphanDel, n.Ino)
	}
	t.drop(n)
	if t.ctr.inodes > 0 {
		t.ctr.inodes--
	}
	return nil
}

// isWithin reports whether directory d is dir or lies below it, walking
// parent pointers up to the root.
func (t *txn) isWithin(d, dir uint64) (bool, error) {
	for i := 0; i < maxDepth; i++ {
		if d == dir {
			return true, nil
		}
		if d == wire.RootIno {
			return false, nil
		}
		n, err := t.inode(d)
		if err != nil {
			return false, ioError("walk parents", err)
		}
		d = n.Parent
	}
	return false, ioError("walk parents", errCorruptf("directory %d is more than %d levels deep", d, maxDepth))
}

// ---- rename ----

func (c *core) rename(ctx context.Context, req *wire.RenameReq) error {
	if err := checkName(req.Name); err != nil {
		return err
	}
	if err := checkName(req.NewName); err != nil {
		return err
	}
	if err := checkSession(req.Session, false); err != nil {
		return err
	}
	if req.Flags&^(wire.RenameNoReplace|wire.RenameExchange) != 0 ||
		req.Flags == wire.RenameNoReplace|wire.RenameExchange {
		return errInval("rename flags %#x", req.Flags)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpRename)
	t.tag(ctx)
	sp, err := t.dir(req.Parent)
	if err != nil {
		return err
	}
	dp, err := t.dir(req.NewParent)
	if err != nil {
		return err
	}
	srcIno, err := t.lookup(sp.Ino, req.Name)
	if err != nil {
		return err
	}
	if srcIno == 0 {
		return errNoEnt("%q in directory %d", req.Name, req.Parent)
	}
	dstIno, err := t.lookup(dp.Ino, req.NewName)
	if err != nil {
		return err
	}
	if dstIno == srcIno {
		return nil // both names are links to one inode: nothing to do
	}
	src, err := t.inode(srcIno)
	if err != nil {
		return err
	}
	if req.Flags&wire.RenameExchange != 0 {
		if err := t.exchange(sp, dp, src, dstIno, req); err != nil {
			return err
		}
		return t.commit()
	}
	if dstIno != 0 && req.Flags&wire.RenameNoReplace != 0 {
		return wire.Errorf(wire.ErrExist, "%q in directory %d", req.NewName, req.NewParent)
	}
	if src.IsDir() {
		inside, err := t.isWithin(dp.Ino, src.Ino)
		if err != nil {
			return err
		}
		if inside {
			return errInval("rename of directory %d into itself", src.Ino)
		}
	}
	if dstIno != 0 {
		dst, err := t.inode(dstIno)
		if err != nil {
			return err
		}
		if src.IsDir() {
			if !dst.IsDir() {
				return wire.Errorf(wire.ErrNotDir, "rename of a directory over non-directory %q", req.NewName)
			}
			if err := t.checkEmpty(dst); err != nil {
				return err
			}
			dp.Nlink--
			if err := t.destroy(dst); err != nil {
				return err
			}
		} else {
			if dst.IsDir() {
				return wire.Errorf(wire.ErrIsDir, "rename of a non-directory over directory %q", req.NewName)
			}
			if err := t.dropLink(dst, req.Session); err != nil {
				return err
			}
		}
	}
	t.b.Delete(keyDentry(sp.Ino, req.Name))
	t.b.Put(keyDentry(dp.Ino, req.NewName), encodeDentry(src.Ino, src.Mode))
	if src.IsDir() {
		sp.Nlink--
		dp.Nlink++
		src.Parent = dp.Ino
	}
	src.Ctime = t.now
	t.save(src)
	sp.Mtime, sp.Ctime = t.now, t.now
	dp.Mtime, dp.Ctime = t.now, t.now
	t.save(sp)
	t.save(dp)
	return t.commit()
}

// exchange swaps the entries of a RenameExchange.
func (t *txn) exchange(sp, dp, src *inode, dstIno uint64, req *wire.RenameReq) error {
	if dstIno == 0 {
		return errNoEnt("%q in directory %d", req.NewName, req.NewParent)
	}
	dst, err := t.inode(dstIno)
	if err != nil {
		return err
	}
	if src.IsDir() {
		inside, err := t.isWithin(dp.Ino, src.Ino)
		if err != nil {
			return err
		}
		if inside {
			return errInval("exchange moves directory %d into itself", src.Ino)
		}
	}
	if dst.IsDir() {
		inside, err := t.isWithin(sp.Ino, dst.Ino)
		if err != nil {
			return err
		}
		if inside {
			return errInval("exchange moves directory %d into itself", dst.Ino)
		}
	}
	t.b.Put(keyDentry(sp.Ino, req.Name), encodeDentry(dst.Ino, dst.Mode))
	t.b.Put(keyDentry(dp.Ino, req.NewName), encodeDentry(src.Ino, src.Mode))
	if src.IsDir() {
		sp.Nlink--
		dp.Nlink++
		src.Parent = dp.Ino
	}
	if dst.IsDir() {
		dp.Nlink--
		sp.Nlink++
		dst.Parent = sp.Ino
	}
	src.Ctime, dst.Ctime = t.now, t.now
	t.save(src)
	t.save(dst)
	sp.Mtime, sp.Ctime = t.now, t.now
	dp.Mtime, dp.Ctime = t.now, t.now
	t.save(sp)
	t.save(dp)
	return nil
}

// ---- xattrs ----

// checkXattrName validates an xattr name. Over-long names (ERANGE in
// Linux) and values (E2BIG) answer EINVAL: the kernel enforces both limits
// before a request reaches FUSE, so only a misbehaving client sees them.
func checkXattrName(name string) error {
	switch {
	case name == "" || strings.IndexByte(name, 0) >= 0:
		return errInval("xattr name %q", name)
	case len(name) > maxXattrName:
		return errInval("xattr name of %d bytes (ERANGE)", len(name))
	}
	return nil
}

func (c *core) getXattr(_ context.Context, req *wire.XattrReq) (wire.XattrReply, error) {
	if err := checkXattrName(req.Name); err != nil {
		return wire.XattrReply{}, err
	}
	v, ok, err := getOpt(c.db, keyXattr(req.Ino, req.Name))
	if err != nil {
		return wire.XattrReply{}, ioError("getxattr", err)
	}
	if !ok {
		if _, err := loadInode(c.db, req.Ino); err != nil {
			return wire.XattrReply{}, err
		}
		return wire.XattrReply{}, wire.Errorf(wire.ErrNoAttr, "xattr %q of inode %d", req.Name, req.Ino)
	}
	return wire.XattrReply{Value: v}, nil
}

func (c *core) listXattr(_ context.Context, req *wire.InoReq) (wire.XattrReply, error) {
	snap, err := c.db.GetSnapshot()
	if err != nil {
		return wire.XattrReply{}, ioError("listxattr", err)
	}
	defer snap.Release()
	if _, err := loadInode(snap, req.Ino); err != nil {
		return wire.XattrReply{}, err
	}
	it := snap.NewIterator(prefix64(pXattr, req.Ino), nil)
	defer it.Release()
	names := []string{}
	for it.Next() {
		names = append(names, string(it.Key()[9:]))
	}
	if err := it.Error(); err != nil {
		return wire.XattrReply{}, ioError("listxattr", err)
	}
	return wire.XattrReply{Names: names}, nil
}

func (c *core) setXattr(ctx context.Context, req *wire.XattrReq) error {
	if err := checkXattrName(req.Name); err != nil {
		return err
	}
	if len(req.Value) > maxXattrValue {
		return errInval("xattr value of %d bytes (E2BIG)", len(req.Value))
	}
	if req.Flags&^(wire.XattrCreate|wire.XattrReplace) != 0 ||
		req.Flags == wire.XattrCreate|wire.XattrReplace {
		return errInval("setxattr flags %#x", req.Flags)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpSetXattr)
	t.tag(ctx)
	n, err := t.inode(req.Ino)
	if err != nil {
		return err
	}
	k := keyXattr(req.Ino, req.Name)
	_, exists, err := getOpt(c.db, k)
	if err != nil {
		return ioError("setxattr", err)
	}
	switch {
	case exists && req.Flags&wire.XattrCreate != 0:
		return wire.Errorf(wire.ErrExist, "xattr %q of inode %d", req.Name, req.Ino)
	case !exists && req.Flags&wire.XattrReplace != 0:
		return wire.Errorf(wire.ErrNoAttr, "xattr %q of inode %d", req.Name, req.Ino)
	}
	t.b.Put(k, req.Value)
	n.Ctime = t.now
	n.Flags |= wire.AttrHasXattrs
	t.save(n)
	return t.commit()
}

func (c *core) removeXattr(ctx context.Context, req *wire.XattrReq) error {
	if err := checkXattrName(req.Name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpRemoveXattr)
	t.tag(ctx)
	n, err := t.inode(req.Ino)
	if err != nil {
		return err
	}
	k := keyXattr(req.Ino, req.Name)
	_, exists, err := getOpt(c.db, k)
	if err != nil {
		return ioError("removexattr", err)
	}
	if !exists {
		return wire.Errorf(wire.ErrNoAttr, "xattr %q of inode %d", req.Name, req.Ino)
	}
	t.b.Delete(k)
	n.Ctime = t.now
	if !c.hasOtherXattr(req.Ino, k) {
		n.Flags &^= wire.AttrHasXattrs
	}
	t.save(n)
	return t.commit()
}

// hasOtherXattr reports whether inode ino has an xattr other than the one
// stored under key except. Callers hold c.mu, so no change can interleave.
func (c *core) hasOtherXattr(ino uint64, except []byte) bool {
	it := c.db.NewIterator(prefix64(pXattr, ino), nil)
	defer it.Release()
	for it.Next() {
		if !bytes.Equal(it.Key(), except) {
			return true
		}
	}
	return it.Error() != nil // when unsure, keep the flag: it only costs a lookup
}
