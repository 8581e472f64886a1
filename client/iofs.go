package client

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// FS is a read-only io/fs view of a reelfs directory tree, so that
// fs.WalkDir, fs.Glob, http.FileServer(http.FS(...)), template.ParseFS
// and fstest work on reelfs unchanged. Every call is bound to the context
// given to NewFS. Paths are io/fs paths (unrooted, slash-separated,
// fs.ValidPath), relative to the FS's root; symbolic links are followed.
// Errors are *fs.PathError and match fs.ErrNotExist, fs.ErrPermission and
// the client's sentinels with errors.Is.
type FS struct {
	c    *Client
	ctx  context.Context
	root string // clean absolute reelfs path
}

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.SubFS      = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)

	_ fs.ReadDirFile = (*fsDir)(nil)
	_ io.ReaderAt    = (*fsFile)(nil)
	_ io.Seeker      = (*fsFile)(nil)
	_ io.WriterTo    = (*fsFile)(nil)
)

// NewFS returns the tree under the absolute reelfs path root (for the
// whole filesystem, "/") as an fs.FS whose calls use ctx. The root is
// not checked here; a missing one makes every call fail with
// fs.ErrNotExist.
func NewFS(ctx context.Context, c *Client, root string) *FS {
	return &FS{c: c, ctx: ctx, root: path.Clean("/" + root)}
}

// maxSymlinks bounds the links followed for one name, as Linux's ELOOP.
const maxSymlinks = 40

// abs turns a valid io/fs name into a reelfs path.
func (f *FS) abs(name string) string {
	if name == "." {
		return f.root
	}
	return path.Join(f.root, name)
}

// resolve returns the attributes of name, following symbolic links.
func (f *FS) resolve(op, name string) (wire.Attr, error) {
	if !fs.ValidPath(name) {
		return wire.Attr{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p := f.abs(name)
	for range maxSymlinks {
		attr, err := f.c.Resolve(f.ctx, p)
		if err != nil {
			return wire.Attr{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !attr.IsSymlink() {
			return attr, nil
		}
		target, err := f.c.Readlink(f.ctx, attr.Ino)
		if err != nil {
			return wire.Attr{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return wire.Attr{}, &fs.PathError{Op: op, Path: name, Err: wire.Errorf(wire.ErrInvalid, "client: too many levels of symbolic links")}
}

// Open opens name for reading: a regular file as an fs.File that is also
// an io.ReaderAt, io.Seeker and io.WriterTo, a directory as an
// fs.ReadDirFile. The caller closes it.
func (f *FS) Open(name string) (fs.File, error) {
	attr, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	info := fileInfo{name: path.Base(name), attr: attr}
	switch {
	case attr.IsDir():
		return &fsDir{fs: f, name: name, info: info}, nil
	case attr.IsRegular():
		file, err := f.c.Open(f.ctx, attr.Ino, os.O_RDONLY)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &fsFile{f: file, ctx: f.ctx, name: name, info: info}, nil
	}
	return &fsSpecial{name: name, info: info}, nil
}

// Stat returns the attributes of name (of its target for a symbolic link).
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	attr, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), attr: attr}, nil
}

// ReadDir lists the directory name, sorted by file name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	attr, err := f.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	return f.readDir(name, attr)
}

func (f *FS) readDir(name string, attr wire.Attr) ([]fs.DirEntry, error) {
	if !attr.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: wire.Errorf(wire.ErrNotDir, "client: not a directory")}
	}
	entries, err := f.c.ReadDirAll(f.ctx, attr.Ino)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(entries))
	for _, de := range entries {
		if de.Name == "." || de.Name == ".." {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(fileInfo{name: de.Name, attr: f.c.overlayAttr(de.Attr)}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// ReadFile returns the content of the file name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	r, ok := file.(*fsFile)
	if !ok {
		if _, isDir := file.(*fsDir); isDir {
			return nil, &fs.PathError{Op: "read", Path: name, Err: wire.Errorf(wire.ErrIsDir, "client: is a directory")}
		}
		return nil, &fs.PathError{Op: "read", Path: name, Err: wire.Errorf(wire.ErrInvalid, "client: not a regular file")}
	}
	// The size as of open, grown by whatever was appended meanwhile.
	buf := make([]byte, 0, r.f.Size())
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 512))
		}
		n, err := r.f.ReadAt(r.ctx, buf[len(buf):cap(buf)], int64(len(buf)))
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
	}
}

// Lstat returns the attributes of name itself, also when it is a
// symbolic link.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	attr, err := f.c.Resolve(f.ctx, f.abs(name))
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return fileInfo{name: path.Base(name), attr: attr}, nil
}

// ReadLink returns the target of the symbolic link name, as stored.
func (f *FS) ReadLink(name string) (string, error) {
	fi, err := f.Lstat(name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: errors.Unwrap(err)}
	}
	attr := fi.Sys().(wire.Attr)
	if !attr.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: wire.Errorf(wire.ErrInvalid, "client: not a symbolic link")}
	}
	target, err := f.c.Readlink(f.ctx, attr.Ino)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return target, nil
}

// Sub returns the FS rooted at dir, which must be a directory.
func (f *FS) Sub(dir string) (fs.FS, error) {
	attr, err := f.resolve("sub", dir)
	if err != nil {
		return nil, err
	}
	if !attr.IsDir() {
		return nil, &fs.PathError{Op: "sub", Path: dir, Err: wire.Errorf(wire.ErrNotDir, "client: not a directory")}
	}
	return &FS{c: f.c, ctx: f.ctx, root: f.abs(dir)}, nil
}

// fileInfo is an fs.FileInfo of reelfs attributes; Sys returns the
// wire.Attr (client.Attr).
type fileInfo struct {
	name string
	attr wire.Attr
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return int64(i.attr.Size) }
func (i fileInfo) Mode() fs.FileMode  { return FileMode(i.attr.Mode) }
func (i fileInfo) ModTime() time.Time { return time.Unix(0, i.attr.Mtime) }
func (i fileInfo) IsDir() bool        { return i.attr.IsDir() }
func (i fileInfo) Sys() any           { return i.attr }

// FileMode converts a POSIX mode (type bits and permissions, as in Attr)
// to an fs.FileMode.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & wire.ModeType {
	case wire.ModeDir:
		mode |= fs.ModeDir
	case wire.ModeSymlink:
		mode |= fs.ModeSymlink
	case wire.ModeFIFO:
		mode |= fs.ModeNamedPipe
	case wire.ModeSocket:
		mode |= fs.ModeSocket
	case wire.ModeChar:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case wire.ModeBlock:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// fsFile is an open regular file of an FS. Like *os.File it keeps an
// offset for Read and Seek; ReadAt and WriteTo are what copies and HTTP
// range serving use to move large pieces at once.
type fsFile struct {
	f    *File
	ctx  context.Context
	name string
	info fileInfo
	off  int64
}

func (r *fsFile) Stat() (fs.FileInfo, error) {
	info := r.info
	info.attr.Size, info.attr.Mtime = uint64(r.f.Size()), r.f.Attr().Mtime
	return info, nil
}

func (r *fsFile) pathErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &fs.PathError{Op: op, Path: r.name, Err: err}
}

// Read reads at the offset and advances it; at the end it returns 0,
// io.EOF, also on every later call.
func (r *fsFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if err := r.f.check(); err != nil {
			return 0, r.pathErr("read", err)
		}
		return 0, nil
	}
	n, err := r.f.ReadAt(r.ctx, p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil // the next Read reports it
	}
	return n, r.pathErr("read", err)
}

// ReadAt reads len(p) bytes at off, fewer only at the end with io.EOF.
func (r *fsFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(r.ctx, p, off)
	return n, r.pathErr("read", err)
}

// Seek sets the offset of the next Read; it may be past the end.
func (r *fsFile) Seek(offset int64, whence int) (int64, error) {
	if err := r.f.check(); err != nil {
		return 0, r.pathErr("seek", err)
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = r.off
	case io.SeekEnd:
		base = r.f.Size()
	default:
		return r.off, r.pathErr("seek", wire.Errorf(wire.ErrInvalid, "client: seek whence %d", whence))
	}
	if base+offset < 0 {
		return r.off, r.pathErr("seek", wire.Errorf(wire.ErrInvalid, "client: seek to negative offset %d", base+offset))
	}
	r.off = base + offset
	return r.off, nil
}

// WriteTo writes the rest of the file from the offset to w in block-sized
// reads, so that io.Copy moves 4 MiB per call instead of 32 KiB.
func (r *fsFile) WriteTo(w io.Writer) (int64, error) {
	n, err := writeTo(r.ctx, r.f, w, r.off)
	r.off += n
	return n, r.pathErr("read", err)
}

func (r *fsFile) Close() error { return r.pathErr("close", r.f.Close(r.ctx)) }

// writeTo copies f from off to its end into w, one block per read.
func writeTo(ctx context.Context, f *File, w io.Writer, off int64) (int64, error) {
	buf := make([]byte, min(max(f.Size()-off, 1), int64(f.c.cfg.BlockSize)))
	var done int64
	for {
		n, err := f.ReadAt(ctx, buf, off+done)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			done += int64(m)
			if werr != nil {
				return done, werr
			}
			if m < n {
				return done, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return done, err
		}
	}
}

// fsDir is an open directory of an FS; its entries are read at the first
// ReadDir and handed out in name order.
type fsDir struct {
	fs      *FS
	name    string
	info    fileInfo
	entries []fs.DirEntry
	read    bool // entries were loaded
	closed  bool
}

func (d *fsDir) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *fsDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: wire.Errorf(wire.ErrIsDir, "client: is a directory")}
}

func (d *fsDir) Close() error {
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.name, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir returns the next n entries, and io.EOF once none are left; with
// n <= 0 it returns all that are left and a nil error.
func (d *fsDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: fs.ErrClosed}
	}
	if !d.read {
		entries, err := d.fs.readDir(d.name, d.info.attr)
		if err != nil {
			return nil, err
		}
		d.entries, d.read = entries, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		if out == nil {
			out = []fs.DirEntry{}
		}
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n:n]
	d.entries = d.entries[n:]
	return out, nil
}

// fsSpecial is an open device, FIFO or socket: it can only be statted.
type fsSpecial struct {
	name string
	info fileInfo
}

func (s *fsSpecial) Stat() (fs.FileInfo, error) { return s.info, nil }
func (s *fsSpecial) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: s.name, Err: wire.Errorf(wire.ErrInvalid, "client: not a regular file")}
}
func (s *fsSpecial) Close() error { return nil }
