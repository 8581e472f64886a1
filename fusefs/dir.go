package fusefs

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/reelfs/reelfs/internal/wire"
)

// readDirPage is how many entries one metaserver call lists.
const readDirPage = 512

// dirStream is an open directory: it lists the directory page by page
// from the metaserver, with each entry's attributes. It keeps what it
// listed so telldir/seekdir offsets (the entry's index plus one) stay valid
// for the life of the open directory; seeking to 0 (rewinddir) starts a
// fresh listing.
//
// It is a directory handle (NodeOpendirHandler) rather than the
// fs.DirStream of NodeReaddirer because only a handle can answer
// READDIRPLUS's per-entry lookups (FileLookuper) from the listing: with a
// DirStream go-fuse would send one metaserver lookup per entry.
type dirStream struct {
	n *node

	mu      sync.Mutex // guards the fields below
	entries []fuse.DirEntry
	attrs   []wire.Attr // attrs[i] belongs to entries[i]; zero for "." and ".."
	after   string      // name to list after on the next page
	started bool        // "." and ".." are in entries
	more    bool        // the metaserver has more pages
	pos     int         // index of the next entry to return
}

var (
	_ fs.FileReaddirenter = (*dirStream)(nil)
	_ fs.FileLookuper     = (*dirStream)(nil)
	_ fs.FileSeekdirer    = (*dirStream)(nil)
	_ fs.FileReleasedirer = (*dirStream)(nil)
	_ fs.FileFsyncdirer   = (*dirStream)(nil)
)

// OpendirHandle opens a directory for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &dirStream{n: n}, 0, n.fsys.result("opendir", n.ino(), nil)
}

// fill lists the next page when every listed entry has been returned.
// Callers hold d.mu.
func (d *dirStream) fill(ctx context.Context) error {
	if !d.started {
		d.started, d.more = true, true
		parent := d.n.ino()
		if _, p := d.n.Parent(); p != nil {
			parent = p.StableAttr().Ino
		}
		d.entries = append(d.entries,
			fuse.DirEntry{Name: ".", Ino: d.n.ino(), Mode: syscall.S_IFDIR, Off: 1},
			fuse.DirEntry{Name: "..", Ino: parent, Mode: syscall.S_IFDIR, Off: 2})
		d.attrs = append(d.attrs, wire.Attr{}, wire.Attr{})
	}
	for d.pos >= len(d.entries) && d.more {
		page, err := d.n.fsys.c.ReadDir(ctx, d.n.ino(), d.after, readDirPage)
		if err != nil {
			return err
		}
		for _, e := range page.Entries {
			d.entries = append(d.entries, fuse.DirEntry{
				Name: e.Name,
				Ino:  e.Attr.Ino,
				Mode: e.Attr.Mode & syscall.S_IFMT,
				Off:  uint64(len(d.entries) + 1),
			})
			d.attrs = append(d.attrs, e.Attr)
			d.after = e.Name
		}
		d.more = page.More && len(page.Entries) > 0
	}
	return nil
}

func (d *dirStream) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fill(ctx); err != nil {
		return nil, d.n.fsys.result("readdir", d.n.ino(), err)
	}
	if d.pos >= len(d.entries) {
		return nil, 0
	}
	de := d.entries[d.pos]
	d.pos++
	return &de, 0
}

// Lookup serves READDIRPLUS: name is the entry Readdirent returned last,
// whose attributes came with the listing.
func (d *dirStream) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d.mu.Lock()
	var a wire.Attr
	found := false
	if i := d.pos - 1; i >= 0 && i < len(d.entries) && d.entries[i].Name == name && d.attrs[i].Ino != 0 {
		a, found = d.attrs[i], true
	}
	d.mu.Unlock()
	if !found {
		return d.n.Lookup(ctx, name, out)
	}
	return d.n.newChild(ctx, name, a, out), 0
}

func (d *dirStream) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.entries, d.attrs, d.after = nil, nil, ""
		d.started, d.more, d.pos = false, false, 0
		return 0
	}
	for uint64(len(d.entries)) < off && (d.more || !d.started) {
		d.pos = len(d.entries)
		if err := d.fill(ctx); err != nil {
			return d.n.fsys.result("seekdir", d.n.ino(), err)
		}
	}
	if off > uint64(len(d.entries)) {
		return d.n.fsys.result("seekdir", d.n.ino(), syscall.EINVAL)
	}
	d.pos = int(off)
	return 0
}

func (d *dirStream) Releasedir(ctx context.Context, flags uint32) {}

// Fsyncdir makes every namespace change that finished before it durable:
// an attribute-less setattr with Sync waits for the metaserver's next
// synced write, which covers all earlier ones.
func (d *dirStream) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	_, err := d.n.fsys.c.SetAttr(ctx, wire.SetAttrReq{Ino: d.n.ino(), Sync: true})
	return d.n.fsys.result("fsyncdir", d.n.ino(), err)
}
