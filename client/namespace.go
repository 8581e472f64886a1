package client

import (
	"context"

	"github.com/reelfs/reelfs/internal/wire"
)

// overlayAttr reports the local size and mtime of an inode open here with
// writes the metaserver has not seen yet.
func (c *Client) overlayAttr(attr wire.Attr) wire.Attr {
	if n := c.openInode(attr.Ino); n != nil {
		return n.overlay(attr)
	}
	return attr
}

// Lookup returns the attributes of name in directory parent.
func (c *Client) Lookup(ctx context.Context, parent uint64, name string) (wire.Attr, error) {
	var attr wire.Attr
	if err := c.call(ctx, wire.OpLookup, &wire.LookupReq{Parent: parent, Name: name}, &attr); err != nil {
		return wire.Attr{}, err
	}
	return c.overlayAttr(attr), nil
}

// GetAttr returns the attributes of ino, with the local size and mtime
// when it is open here with unflushed or uncommitted writes.
func (c *Client) GetAttr(ctx context.Context, ino uint64) (wire.Attr, error) {
	var attr wire.Attr
	if err := c.call(ctx, wire.OpGetAttr, &wire.InoReq{Ino: ino}, &attr); err != nil {
		return wire.Attr{}, err
	}
	return c.overlayAttr(attr), nil
}

// SetAttr changes the attributes named by req.Valid. A size change of an
// inode open here first truncates the shared local state (dirty bytes past
// the size are dropped) and commits the rest, so the metaserver sees
// writes and truncation in order.
func (c *Client) SetAttr(ctx context.Context, req wire.SetAttrReq) (wire.Attr, error) {
	if n := c.openInode(req.Ino); n != nil {
		return c.setAttrOpen(ctx, n, req)
	}
	var attr wire.Attr
	if err := c.call(ctx, wire.OpSetAttr, &req, &attr); err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

// Mkdir creates directory name in parent.
func (c *Client) Mkdir(ctx context.Context, parent uint64, name string, mode, uid, gid uint32) (wire.Attr, error) {
	var attr wire.Attr
	req := wire.CreateReq{Parent: parent, Name: name, Mode: mode&wire.ModePerm | wire.ModeDir, Uid: uid, Gid: gid}
	if err := c.call(ctx, wire.OpMkdir, &req, &attr); err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

// Mknod creates a node of the type in mode (regular file, FIFO, socket,
// character or block device with rdev) without opening it.
func (c *Client) Mknod(ctx context.Context, parent uint64, name string, mode, rdev, uid, gid uint32) (wire.Attr, error) {
	var attr wire.Attr
	req := wire.CreateReq{Parent: parent, Name: name, Mode: mode, Rdev: rdev, Uid: uid, Gid: gid, Exclusive: true}
	if err := c.call(ctx, wire.OpCreate, &req, &attr); err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

// Symlink creates name in parent pointing at target.
func (c *Client) Symlink(ctx context.Context, parent uint64, name, target string, uid, gid uint32) (wire.Attr, error) {
	var attr wire.Attr
	req := wire.CreateReq{Parent: parent, Name: name, Mode: wire.ModeSymlink | 0o777, Target: target, Uid: uid, Gid: gid}
	if err := c.call(ctx, wire.OpSymlink, &req, &attr); err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

// Readlink returns a symlink's target.
func (c *Client) Readlink(ctx context.Context, ino uint64) (string, error) {
	var r wire.ReadlinkReply
	if err := c.call(ctx, wire.OpReadlink, &wire.InoReq{Ino: ino}, &r); err != nil {
		return "", err
	}
	return r.Target, nil
}

// Link adds the hard link newParent/newName to ino.
func (c *Client) Link(ctx context.Context, ino, newParent uint64, newName string) (wire.Attr, error) {
	var attr wire.Attr
	if err := c.call(ctx, wire.OpLink, &wire.LinkReq{Ino: ino, NewParent: newParent, NewName: newName}, &attr); err != nil {
		return wire.Attr{}, err
	}
	return c.overlayAttr(attr), nil
}

// victim finds the inode that removing parent/name may orphan, when this
// client holds it open: such an inode lives on (the call carries our
// session) and its last Close must release it. It costs a lookup only
// while some File is open.
func (c *Client) victim(ctx context.Context, parent uint64, name string) *inode {
	if !c.hasOpen() {
		return nil
	}
	var attr wire.Attr
	if err := c.call(ctx, wire.OpLookup, &wire.LookupReq{Parent: parent, Name: name}, &attr); err != nil {
		return nil
	}
	if !attr.IsRegular() || attr.Nlink > 1 {
		return nil
	}
	return c.openInode(attr.Ino)
}

func markOrphan(n *inode) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.orphan = true
	n.mu.Unlock()
}

// Unlink removes name from parent. A file this client holds open stays
// readable and writable as an orphan until its last Close.
func (c *Client) Unlink(ctx context.Context, parent uint64, name string) error {
	_, err := c.UnlinkAttr(ctx, parent, name)
	return err
}

// UnlinkAttr is Unlink that also returns the parent's attributes as the
// removal left them; their Ino is 0 when the metaserver did not say (the
// answer to a retry of a removal that had happened).
func (c *Client) UnlinkAttr(ctx context.Context, parent uint64, name string) (wire.Attr, error) {
	v := c.victim(ctx, parent, name)
	var rep wire.UnlinkReply
	if err := c.call(ctx, wire.OpUnlink, &wire.UnlinkReq{Parent: parent, Name: name, Session: c.session}, &rep); err != nil {
		return wire.Attr{}, err
	}
	markOrphan(v)
	return rep.Parent, nil
}

// Rmdir removes the empty directory name from parent.
func (c *Client) Rmdir(ctx context.Context, parent uint64, name string) error {
	_, err := c.RmdirAttr(ctx, parent, name)
	return err
}

// RmdirAttr is Rmdir that also returns the parent's attributes, as
// UnlinkAttr does.
func (c *Client) RmdirAttr(ctx context.Context, parent uint64, name string) (wire.Attr, error) {
	var rep wire.UnlinkReply
	if err := c.call(ctx, wire.OpRmdir, &wire.UnlinkReq{Parent: parent, Name: name}, &rep); err != nil {
		return wire.Attr{}, err
	}
	return rep.Parent, nil
}

// Rename moves parent/name to newParent/newName; flags are wire.Rename*.
// A replaced file this client holds open becomes an orphan, as with
// Unlink.
func (c *Client) Rename(ctx context.Context, parent uint64, name string, newParent uint64, newName string, flags uint32) error {
	var v *inode
	if flags&wire.RenameExchange == 0 {
		v = c.victim(ctx, newParent, newName)
	}
	req := wire.RenameReq{Parent: parent, Name: name, NewParent: newParent, NewName: newName, Flags: flags, Session: c.session}
	if err := c.call(ctx, wire.OpRename, &req, nil); err != nil {
		return err
	}
	markOrphan(v)
	return nil
}

// ReadDir returns one page of directory ino's entries in name order,
// starting after name after; limit 0 is the server's default.
func (c *Client) ReadDir(ctx context.Context, ino uint64, after string, limit int) (wire.ReadDirReply, error) {
	var r wire.ReadDirReply
	if err := c.call(ctx, wire.OpReadDir, &wire.ReadDirReq{Ino: ino, After: after, Limit: limit}, &r); err != nil {
		return wire.ReadDirReply{}, err
	}
	if c.hasOpen() {
		for i := range r.Entries {
			r.Entries[i].Attr = c.overlayAttr(r.Entries[i].Attr)
		}
	}
	return r, nil
}

// ReadDirAll returns every entry of directory ino in name order.
func (c *Client) ReadDirAll(ctx context.Context, ino uint64) ([]wire.DirEntry, error) {
	var all []wire.DirEntry
	after := ""
	for {
		r, err := c.ReadDir(ctx, ino, after, 0)
		if err != nil {
			return nil, err
		}
		all = append(all, r.Entries...)
		if !r.More || len(r.Entries) == 0 {
			return all, nil
		}
		after = r.Entries[len(r.Entries)-1].Name
	}
}

// GetXattr returns the value of extended attribute name of ino.
func (c *Client) GetXattr(ctx context.Context, ino uint64, name string) ([]byte, error) {
	var r wire.XattrReply
	if err := c.call(ctx, wire.OpGetXattr, &wire.XattrReq{Ino: ino, Name: name}, &r); err != nil {
		return nil, err
	}
	if r.Value == nil {
		r.Value = []byte{}
	}
	return r.Value, nil
}

// SetXattr sets extended attribute name of ino; flags are wire.Xattr*.
func (c *Client) SetXattr(ctx context.Context, ino uint64, name string, value []byte, flags uint32) error {
	return c.call(ctx, wire.OpSetXattr, &wire.XattrReq{Ino: ino, Name: name, Value: value, Flags: flags}, nil)
}

// ListXattr returns the names of ino's extended attributes.
func (c *Client) ListXattr(ctx context.Context, ino uint64) ([]string, error) {
	var r wire.XattrReply
	if err := c.call(ctx, wire.OpListXattr, &wire.InoReq{Ino: ino}, &r); err != nil {
		return nil, err
	}
	return r.Names, nil
}

// RemoveXattr removes extended attribute name of ino.
func (c *Client) RemoveXattr(ctx context.Context, ino uint64, name string) error {
	return c.call(ctx, wire.OpRemoveXattr, &wire.XattrReq{Ino: ino, Name: name}, nil)
}

// StatFS returns the cluster's capacity.
func (c *Client) StatFS(ctx context.Context) (wire.StatFS, error) {
	var r wire.StatFS
	if err := c.call(ctx, wire.OpStatFS, struct{}{}, &r); err != nil {
		return wire.StatFS{}, err
	}
	return r, nil
}

// Groups returns every chunkserver group the metaserver knows, and
// refreshes the client's membership cache with it.
func (c *Client) Groups(ctx context.Context) ([]wire.Group, error) {
	var r wire.GroupsReply
	if err := c.call(ctx, wire.OpGroups, struct{}{}, &r); err != nil {
		return nil, err
	}
	c.groups.set(r.Groups)
	return r.Groups, nil
}

// Cluster is Groups plus the answering leader's view of metaserver
// failover (Meta is nil when the metaserver runs alone).
func (c *Client) Cluster(ctx context.Context) (wire.GroupsReply, error) {
	var r wire.GroupsReply
	if err := c.call(ctx, wire.OpGroups, struct{}{}, &r); err != nil {
		return wire.GroupsReply{}, err
	}
	c.groups.set(r.Groups)
	return r, nil
}

// RemoveMember retires chunkserver id from group: the tracker forgets it
// and drops it from the in-sync set, so placement and the deletion queue
// stop waiting for it. For a member whose disk is gone for good.
func (c *Client) RemoveMember(ctx context.Context, group uint32, id string) error {
	return c.call(ctx, wire.OpRemoveMember, wire.RemoveMemberReq{Group: group, ID: id}, &struct{}{})
}

// Lock sends a lock request (wire.LockReq; Session is filled in) to the
// metaserver, which keeps locks for every mount of the cluster.
func (c *Client) Lock(ctx context.Context, req wire.LockReq) (wire.LockReply, error) {
	req.Session = c.session
	var r wire.LockReply
	err := c.call(ctx, wire.OpLock, &req, &r)
	return r, err
}
