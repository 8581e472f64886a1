package httpd

import (
	"context"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// fakeFS is an in-memory FileSystem for tests. It counts open files and
// the bytes and offsets read, so tests can see what a response fetched.
type fakeFS struct {
	mu      sync.Mutex
	nodes   map[uint64]*fakeNode
	nextIno uint64

	open      atomic.Int64 // files open now
	opens     atomic.Int64 // Open/CreatePath calls
	bytesRead atomic.Int64
	reads     atomic.Int64
	minOff    atomic.Int64 // lowest offset read since resetReads

	// readErr, when set, fails every ReadAt with it.
	readErr atomic.Pointer[error]
	// failResolve, when set, fails every Resolve with it.
	failResolve atomic.Pointer[error]
}

type fakeNode struct {
	ino      uint64
	mode     uint32
	data     []byte
	mtime    int64
	version  uint64
	children map[string]uint64
}

func (n *fakeNode) attr() wire.Attr {
	return wire.Attr{
		Ino: n.ino, Mode: n.mode, Nlink: 1, Size: uint64(len(n.data)),
		Mtime: n.mtime, Ctime: n.mtime, Atime: n.mtime, Version: n.version,
	}
}

func newFakeFS() *fakeFS {
	f := &fakeFS{nodes: map[uint64]*fakeNode{}, nextIno: 2}
	f.nodes[wire.RootIno] = &fakeNode{
		ino: wire.RootIno, mode: wire.ModeDir | 0o755, children: map[string]uint64{},
		mtime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), version: 1,
	}
	f.resetReads()
	return f
}

var _ FileSystem = (*fakeFS)(nil)
var _ File = (*fakeFile)(nil)

func (f *fakeFS) resetReads() {
	f.bytesRead.Store(0)
	f.reads.Store(0)
	f.minOff.Store(math.MaxInt64)
}

func split(p string) []string {
	var out []string
	for s := range strings.SplitSeq(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// walk resolves path; f.mu held.
func (f *fakeFS) walk(p string) (*fakeNode, error) {
	n := f.nodes[wire.RootIno]
	for _, name := range split(p) {
		if n.mode&wire.ModeType != wire.ModeDir {
			return nil, wire.Errorf(wire.ErrNotDir, "%s", p)
		}
		ino, ok := n.children[name]
		if !ok {
			return nil, wire.Errorf(wire.ErrNotFound, "%s", p)
		}
		n = f.nodes[ino]
	}
	return n, nil
}

func (f *fakeFS) parentOf(p string) (*fakeNode, string, error) {
	parts := split(p)
	if len(parts) == 0 {
		return nil, "", wire.Errorf(wire.ErrInvalid, "root has no parent")
	}
	dir, err := f.walk("/" + strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if dir.mode&wire.ModeType != wire.ModeDir {
		return nil, "", wire.Errorf(wire.ErrNotDir, "%s", p)
	}
	return dir, parts[len(parts)-1], nil
}

func (f *fakeFS) Resolve(ctx context.Context, p string) (wire.Attr, error) {
	if e := f.failResolve.Load(); e != nil {
		return wire.Attr{}, *e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(p)
	if err != nil {
		return wire.Attr{}, err
	}
	return n.attr(), nil
}

func (f *fakeFS) ReadDir(ctx context.Context, ino uint64, after string, limit int) (wire.ReadDirReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[ino]
	if !ok {
		return wire.ReadDirReply{}, wire.ErrNotFound
	}
	if n.children == nil {
		return wire.ReadDirReply{}, wire.ErrNotDir
	}
	if limit <= 0 {
		limit = 100
	}
	// A real metaserver caps its pages; so does the fake, to make the
	// server page through ReadDir.
	limit = min(limit, 7)
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		if name > after {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var rep wire.ReadDirReply
	for i, name := range names {
		if i == limit {
			rep.More = true
			break
		}
		rep.Entries = append(rep.Entries, wire.DirEntry{Name: name, Attr: f.nodes[n.children[name]].attr()})
	}
	return rep, nil
}

func (f *fakeFS) Open(ctx context.Context, ino uint64, flags int) (File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[ino]
	if !ok {
		return nil, wire.ErrNotFound
	}
	if n.mode&wire.ModeType == wire.ModeDir {
		return nil, wire.ErrIsDir
	}
	f.open.Add(1)
	f.opens.Add(1)
	return &fakeFile{fs: f, n: n, attr: n.attr()}, nil
}

func (f *fakeFS) ResolveOpen(ctx context.Context, p string) (wire.Attr, File, error) {
	a, err := f.Resolve(ctx, p)
	if err != nil || a.Mode&wire.ModeType != wire.ModeRegular {
		return a, nil, err
	}
	file, err := f.Open(ctx, a.Ino, os.O_RDONLY)
	if err != nil {
		return wire.Attr{}, nil, err
	}
	return file.Attr(), file, nil
}

func (f *fakeFS) CreatePath(ctx context.Context, p string, mode uint32, flags int) (File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, err := f.parentOf(p)
	if err != nil {
		return nil, err
	}
	if ino, ok := dir.children[name]; ok {
		if flags&os.O_EXCL != 0 {
			return nil, wire.ErrExist
		}
		n := f.nodes[ino]
		if flags&os.O_TRUNC != 0 {
			n.data = nil
			n.version++
		}
		f.open.Add(1)
		f.opens.Add(1)
		return &fakeFile{fs: f, n: n, attr: n.attr()}, nil
	}
	n := f.newNode(wire.ModeRegular|mode&wire.ModePerm, nil)
	dir.children[name] = n.ino
	f.open.Add(1)
	f.opens.Add(1)
	return &fakeFile{fs: f, n: n, attr: n.attr()}, nil
}

func (f *fakeFS) newNode(mode uint32, data []byte) *fakeNode {
	n := &fakeNode{ino: f.nextIno, mode: mode, data: data, version: 1,
		mtime: time.Date(2024, 3, 1, 12, 0, 0, 500, time.UTC).UnixNano()}
	if mode&wire.ModeType == wire.ModeDir {
		n.children = map[string]uint64{}
	}
	f.nextIno++
	f.nodes[n.ino] = n
	return n
}

func (f *fakeFS) RenamePath(ctx context.Context, from, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sdir, sname, err := f.parentOf(from)
	if err != nil {
		return err
	}
	ino, ok := sdir.children[sname]
	if !ok {
		return wire.ErrNotFound
	}
	ddir, dname, err := f.parentOf(to)
	if err != nil {
		return err
	}
	if old, ok := ddir.children[dname]; ok && f.nodes[old].children != nil {
		return wire.ErrIsDir
	}
	delete(sdir.children, sname)
	ddir.children[dname] = ino
	return nil
}

func (f *fakeFS) RemovePath(ctx context.Context, p string, recursive bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, err := f.parentOf(p)
	if err != nil {
		return err
	}
	ino, ok := dir.children[name]
	if !ok {
		return wire.ErrNotFound
	}
	if n := f.nodes[ino]; n.children != nil && len(n.children) > 0 && !recursive {
		return wire.ErrNotEmpty
	}
	delete(dir.children, name)
	return nil
}

// put stores data at p, creating parent directories.
func (f *fakeFS) put(t testing.TB, p string, data []byte) wire.Attr {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := split(p)
	dir := f.nodes[wire.RootIno]
	for _, name := range parts[:len(parts)-1] {
		ino, ok := dir.children[name]
		if !ok {
			n := f.newNode(wire.ModeDir|0o755, nil)
			dir.children[name] = n.ino
			ino = n.ino
		}
		dir = f.nodes[ino]
	}
	name := parts[len(parts)-1]
	if ino, ok := dir.children[name]; ok {
		n := f.nodes[ino]
		n.data = slices.Clone(data)
		n.version++
		return n.attr()
	}
	n := f.newNode(wire.ModeRegular|0o644, slices.Clone(data))
	dir.children[name] = n.ino
	return n.attr()
}

// mkdir makes directory p and its parents.
func (f *fakeFS) mkdir(t testing.TB, p string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.nodes[wire.RootIno]
	for _, name := range split(p) {
		ino, ok := dir.children[name]
		if !ok {
			n := f.newNode(wire.ModeDir|0o755, nil)
			dir.children[name] = n.ino
			ino = n.ino
		}
		dir = f.nodes[ino]
	}
}

// symlink adds a symlink node at p.
func (f *fakeFS) symlink(t testing.TB, p string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, err := f.parentOf(p)
	if err != nil {
		t.Fatal(err)
	}
	n := f.newNode(wire.ModeSymlink|0o777, []byte("target"))
	dir.children[name] = n.ino
}

// data returns the content at p, or ok false.
func (f *fakeFS) data(p string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(p)
	if err != nil || n.children != nil {
		return nil, false
	}
	return slices.Clone(n.data), true
}

// names lists directory p.
func (f *fakeFS) names(p string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.walk(p)
	if err != nil {
		return nil
	}
	var out []string
	for name := range n.children {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

type fakeFile struct {
	fs     *fakeFS
	n      *fakeNode
	attr   wire.Attr
	closed atomic.Bool
	dirty  bool
}

func (ff *fakeFile) Attr() wire.Attr { return ff.attr }

func (ff *fakeFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if ff.closed.Load() {
		return 0, wire.Errorf(wire.ErrInvalid, "read of a closed file")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if e := ff.fs.readErr.Load(); e != nil {
		return 0, *e
	}
	ff.fs.reads.Add(1)
	for {
		cur := ff.fs.minOff.Load()
		if off >= cur || ff.fs.minOff.CompareAndSwap(cur, off) {
			break
		}
	}
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if off >= int64(len(ff.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, ff.n.data[off:])
	ff.fs.bytesRead.Add(int64(n))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (ff *fakeFile) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if ff.closed.Load() {
		return 0, wire.Errorf(wire.ErrInvalid, "write to a closed file")
	}
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(ff.n.data)) {
		ff.n.data = append(ff.n.data, make([]byte, end-int64(len(ff.n.data)))...)
	}
	copy(ff.n.data[off:], p)
	ff.dirty = true
	return len(p), nil
}

func (ff *fakeFile) Close(ctx context.Context) error {
	if !ff.closed.CompareAndSwap(false, true) {
		return wire.Errorf(wire.ErrInvalid, "double close")
	}
	ff.fs.mu.Lock()
	if ff.dirty {
		ff.n.version++
		ff.n.mtime = time.Now().UnixNano()
	}
	ff.fs.mu.Unlock()
	ff.fs.open.Add(-1)
	return nil
}
