package client

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/reelfs/reelfs/internal/wire"
)

// File is an open regular file. Every File of one inode in a Client shares
// that inode's state (write buffer, size), so a read through any handle
// sees writes through any other. A File is safe for concurrent use.
type File struct {
	c     *Client
	n     *inode
	flags int
	attr  wire.Attr // as of open

	mu     sync.Mutex // guards closed, next, run and ahead
	closed bool
	next   int64 // offset just past the previous read: sequential detection
	run    int64 // bytes read back to back since the last seek
	ahead  int64 // file offset up to which prefetch was started
}

// seqSlack is how far a read may start from where the previous one ended
// and still count as sequential. The kernel sends a mount's readahead as
// several 1 MiB requests at once, which arrive a few MiB out of order; a
// smaller slack made a streaming read look random forever.
const seqSlack = 8 << 20

// Create creates (or, without O_EXCL, opens an existing regular file)
// name in parent and opens it: one metaserver call that also registers the
// open in this client's session. flags are os.O_* bits; O_EXCL fails with
// wire.ErrExist when name exists, O_TRUNC empties an existing file.
func (c *Client) Create(ctx context.Context, parent uint64, name string, mode, uid, gid uint32, flags int) (*File, error) {
	if mode&wire.ModeType == 0 {
		mode |= wire.ModeRegular
	}
	if mode&wire.ModeType != wire.ModeRegular {
		return nil, wire.Errorf(wire.ErrInvalid, "client: create %q with mode %o: use Mknod for special files", name, mode)
	}
	req := wire.CreateReq{
		Parent: parent, Name: name, Mode: mode, Uid: uid, Gid: gid,
		Exclusive: flags&os.O_EXCL != 0, Open: true, Session: c.session,
	}
	c.sessMu.RLock()
	var attr wire.Attr
	err := c.call(ctx, wire.OpCreate, &req, &attr)
	var f *File
	if err == nil {
		f, err = c.newFile(attr, flags)
	}
	c.sessMu.RUnlock()
	if err != nil {
		return nil, err
	}
	if flags&os.O_TRUNC != 0 && f.writable() && attr.Size > 0 {
		if err := f.Truncate(ctx, 0); err != nil {
			_ = f.Close(ctx)
			return nil, err
		}
	}
	return f, nil
}

// Open opens inode ino. The open reads the inode's current attributes from
// the metaserver (close-to-open consistency): slice lists cached from an
// older version are not used again. O_TRUNC empties the file.
func (c *Client) Open(ctx context.Context, ino uint64, flags int) (*File, error) {
	c.sessMu.RLock()
	var attr wire.Attr
	err := c.call(ctx, wire.OpOpen, &wire.OpenReq{Ino: ino, Session: c.session}, &attr)
	return c.opened(ctx, attr, err, flags)
}

// ResolveOpen resolves an absolute path and, when it names a regular
// file, opens it in the same metaserver round trip (see Open). For any
// other node it returns the attributes and a nil File.
func (c *Client) ResolveOpen(ctx context.Context, p string, flags int) (wire.Attr, *File, error) {
	clean, err := cleanPath(p)
	if err != nil {
		return wire.Attr{}, nil, err
	}
	c.sessMu.RLock()
	var attr wire.Attr
	err = c.call(ctx, wire.OpResolve, &wire.ResolveReq{Path: clean, Open: true, Session: c.session}, &attr)
	if err == nil && !attr.IsRegular() {
		c.sessMu.RUnlock()
		return c.overlayAttr(attr), nil, nil
	}
	f, err := c.opened(ctx, attr, err, flags)
	if err != nil {
		return wire.Attr{}, nil, err
	}
	return f.Attr(), f, nil
}

// opened finishes an open the metaserver answered with attr (or err):
// it runs with sessMu read-locked, which it releases.
func (c *Client) opened(ctx context.Context, attr wire.Attr, err error, flags int) (*File, error) {
	var f *File
	if err == nil {
		switch {
		case attr.IsDir():
			err = wire.Errorf(wire.ErrIsDir, "client: open inode %d: a directory", attr.Ino)
		case !attr.IsRegular():
			err = wire.Errorf(wire.ErrInvalid, "client: open inode %d of mode %o: not a regular file", attr.Ino, attr.Mode)
		default:
			f, err = c.newFile(attr, flags)
		}
	}
	c.sessMu.RUnlock()
	if err != nil {
		// An open the metaserver registered but we refuse is not in our
		// open set, so the next keep-alive drops it.
		return nil, err
	}
	if flags&os.O_TRUNC != 0 && f.writable() {
		if err := f.truncateIfNeeded(ctx); err != nil {
			_ = f.Close(ctx)
			return nil, err
		}
	}
	return f, nil
}

func (c *Client) newFile(attr wire.Attr, flags int) (*File, error) {
	n, err := c.acquire(attr)
	if err != nil {
		return nil, err
	}
	return &File{c: c, n: n, flags: flags, attr: attr}, nil
}

func (f *File) writable() bool {
	acc := f.flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	return acc == os.O_WRONLY || acc == os.O_RDWR
}

func (f *File) truncateIfNeeded(ctx context.Context) error {
	f.n.mu.Lock()
	need := f.n.size > 0 || !f.n.wb.empty()
	f.n.mu.Unlock()
	if !need {
		return nil
	}
	return f.Truncate(ctx, 0)
}

// check returns ErrClosed for a closed File or Client.
func (f *File) check() error {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return f.c.errIfClosed()
}

// Ino returns the file's inode number.
func (f *File) Ino() uint64 { return f.n.ino }

// Attr returns the attributes as of open, with the size and mtime of local
// writes not yet flushed.
func (f *File) Attr() wire.Attr {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	a := f.attr
	a.Size = uint64(f.n.size)
	a.Mtime = f.n.mtime
	a.Version = f.n.version
	return a
}

// Size returns the current size including local unflushed writes.
func (f *File) Size() int64 {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.size
}

// Version returns the inode version as of open or this client's last
// commit or truncation of it.
func (f *File) Version() uint64 {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.version
}

// WriteAt writes p at off; with O_APPEND the offset is ignored and p goes
// to the end of the file. Nothing is visible to other clients before a
// Flush, Sync or Close. A failed background upload makes later writes fail
// until a Flush succeeds.
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	_, err := f.writeAt(ctx, p, off)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeAt is WriteAt that also returns where the data went.
func (f *File) writeAt(ctx context.Context, p []byte, off int64) (int64, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if !f.writable() {
		return 0, ErrReadOnly
	}
	return f.c.write(ctx, f.n, p, off, f.flags&os.O_APPEND != 0)
}

// ReadAt reads len(p) bytes at off with io.ReaderAt semantics: fewer only
// at the end of the file, with io.EOF. Holes read as zeros.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, wire.Errorf(wire.ErrInvalid, "client: read at negative offset %d", off)
	}
	size := f.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), size-off))
	f.mu.Lock()
	if off >= f.next-seqSlack && off <= f.next+seqSlack {
		f.run += int64(want)
	} else {
		f.run = int64(want)
		f.ahead = 0 // a seek: prefetch starts afresh once reads follow on
	}
	f.next = off + int64(want)
	// Whole blocks and prefetch only once a block's worth was read back to
	// back: the kernel cuts a player's 1 MiB seek into several contiguous
	// 128 KiB reads, which must stay page fetches, not a 4-block prefetch.
	seq := f.run >= int64(f.c.cfg.BlockSize)
	f.mu.Unlock()
	if err := f.c.readRange(ctx, f.n, p[:want], off, seq); err != nil {
		return 0, err
	}
	f.c.stats.bytesRead.Add(int64(want))
	if seq {
		f.prefetch(off+int64(want), size)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// Truncate sets the file size: dirty bytes past it are dropped, the rest
// is committed, then the metaserver truncates (or extends with a hole).
func (f *File) Truncate(ctx context.Context, size int64) error {
	if err := f.check(); err != nil {
		return err
	}
	if !f.writable() {
		return ErrReadOnly
	}
	if size < 0 {
		return wire.Errorf(wire.ErrInvalid, "client: truncate to negative size %d", size)
	}
	_, err := f.c.setAttrOpen(ctx, f.n, wire.SetAttrReq{Ino: f.n.ino, Valid: wire.SetSize, Size: uint64(size)})
	return err
}

// Flush uploads dirty data and commits it (not fsync'd). On a read-only
// handle it does nothing.
func (f *File) Flush(ctx context.Context) error {
	if err := f.check(); err != nil {
		return err
	}
	if !f.writable() {
		return nil
	}
	return f.c.flush(ctx, f.n, false)
}

// Sync uploads and commits durably: the commit waits for the metaserver's
// disk (CommitReq.Sync). Blocks are durable when their PUT returns.
func (f *File) Sync(ctx context.Context) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.c.flush(ctx, f.n, true)
}

// Close flushes (for a writable handle, or the last handle of an inode
// with pending writes) and releases the File. It returns the first write
// error; a clean close sends nothing to the metaserver.
func (f *File) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrClosed
	}
	f.closed = true
	f.mu.Unlock()
	c := f.c
	var err error
	if !c.isClosed() {
		flush := f.writable()
		if !flush {
			c.mu.Lock()
			last := f.n.refs == 1
			c.mu.Unlock()
			if last {
				f.n.mu.Lock()
				flush = f.n.changed || !f.n.wb.empty()
				f.n.mu.Unlock()
			}
		}
		if flush {
			err = c.flush(ctx, f.n, false)
		}
	}
	if rerr := c.release(ctx, f.n); err == nil {
		err = rerr
	}
	return err
}

// IO returns an adapter with its own offset (starting at 0) for io.Copy
// and friends, bound to ctx.
func (f *File) IO(ctx context.Context) *FileIO { return &FileIO{f: f, ctx: ctx} }

// Refresh reads the file's attributes from the metaserver and adopts a
// newer version committed by another client: later reads through this
// File see that version's bytes and size. It reports whether the version
// moved. The mount calls it when a lock is granted, so that a program
// that coordinates with others by locks (SQLite, a log follower) reads
// what the previous holder wrote, however long its descriptor was open.
func (f *File) Refresh(ctx context.Context) (bool, error) {
	if err := f.check(); err != nil {
		return false, err
	}
	var a wire.Attr
	if err := f.c.call(ctx, wire.OpGetAttr, &wire.InoReq{Ino: f.n.ino}, &a); err != nil {
		return false, err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	old := f.n.version
	if a.Version > old {
		f.n.adopt(a)
		f.attr = a
	}
	return f.n.version > old, nil
}
