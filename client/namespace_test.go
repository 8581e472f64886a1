package client

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestCleanPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/a/b/", "/a/b", true},
		{"//a/./b", "/a/b", true},
		{"/a/../b", "/b", true},
		{"/a/b/../..", "/", true},
		{"", "", false},
		{"a/b", "", false},
		{"/..", "", false},
		{"/a/../../b", "", false},
		{"/a\x00b", "", false},
	} {
		got, err := cleanPath(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("cleanPath(%q) = %q, %v; want EINVAL", tc.in, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Meta = "127.0.0.1:1"
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with Meta: %v", err)
	}
	for name, tweak := range map[string]func(*Config){
		"no meta":        func(c *Config) { c.Meta = "" },
		"block too big":  func(c *Config) { c.BlockSize = wire.MaxBlockSize + 1 },
		"block tiny":     func(c *Config) { c.BlockSize = 100 },
		"tiny cache":     func(c *Config) { c.CacheBytes = 10 },
		"buffer < block": func(c *Config) { c.WriteBuffer = int64(c.BlockSize) - 1 },
		"no uploads":     func(c *Config) { c.Uploads = 0 },
		"prefetch < 0":   func(c *Config) { c.Prefetch = -1 },
		"no retry":       func(c *Config) { c.RetryTimeout = 0 },
		"session tick":   func(c *Config) { c.SessionEvery = 0 },
		"nil logger":     func(c *Config) { c.Logger = nil },
	} {
		c := good
		tweak(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", name, err)
		}
	}
}

func TestPaths(t *testing.T) {
	cl := newCluster(t, clusterOpts{readDirLimit: 3}) // small pages: ReadDirAll must page
	c := cl.client(nil)
	ctx := t.Context()

	d, err := c.MkdirAll(ctx, "/a/b/c", 0o755)
	if err != nil || !d.IsDir() {
		t.Fatalf("mkdirall: %+v %v", d, err)
	}
	if again, err := c.MkdirAll(ctx, "/a/b/c/", 0o755); err != nil || again.Ino != d.Ino {
		t.Fatalf("mkdirall of an existing dir: %+v %v", again, err)
	}
	f := mustCreate(t, c, "/a/file", os.O_WRONLY|os.O_EXCL)
	writeAt(t, f, []byte("hello"), 0)
	mustClose(t, f)
	if _, err := c.MkdirAll(ctx, "/a/file/x", 0o755); !errors.Is(err, wire.ErrNotDir) {
		t.Fatalf("mkdirall through a file: %v, want ENOTDIR", err)
	}
	if _, err := c.CreatePath(ctx, "/a/file", 0o644, os.O_WRONLY|os.O_EXCL); !errors.Is(err, wire.ErrExist) {
		t.Fatalf("exclusive create of an existing file: %v", err)
	}
	_, err = c.CreatePath(ctx, "/missing/dir/f", 0o644, os.O_WRONLY)
	if !errors.Is(err, wire.ErrNotFound) || !strings.Contains(err.Error(), "/missing/dir") {
		t.Fatalf("create under a missing parent: %v", err)
	}
	if _, err := c.OpenPath(ctx, "/a/../../etc", os.O_RDONLY); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("path escaping the root: %v", err)
	}
	if _, err := c.OpenPath(ctx, "/a", os.O_RDONLY); !errors.Is(err, wire.ErrIsDir) {
		t.Fatalf("open of a directory: %v", err)
	}
	g, err := c.OpenPath(ctx, "/a/new", os.O_WRONLY|os.O_CREATE)
	if err != nil {
		t.Fatalf("open with O_CREATE: %v", err)
	}
	mustClose(t, g)

	var names []string
	for i := 0; i < 8; i++ {
		name := string(rune('p' + i))
		names = append(names, name)
		f := mustCreate(t, c, "/a/b/"+name, os.O_WRONLY)
		mustClose(t, f)
	}
	bAttr, _ := c.Resolve(ctx, "/a/b")
	entries, err := c.ReadDirAll(ctx, bAttr.Ino)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
	}
	want := append([]string{"c"}, names...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("readdirall = %v, want %v", got, want)
	}

	if err := c.RenamePath(ctx, "/a/file", "/a/b/c/moved"); err != nil {
		t.Fatal(err)
	}
	m := mustOpen(t, c, "/a/b/c/moved", os.O_RDONLY)
	if string(readAll(t, m)) != "hello" {
		t.Fatal("renamed file lost its content")
	}
	mustClose(t, m)
	if err := c.RemovePath(ctx, "/a/b", false); !errors.Is(err, wire.ErrNotEmpty) {
		t.Fatalf("non-recursive remove of a full dir: %v", err)
	}
	if err := c.RemovePath(ctx, "/a", true); err != nil {
		t.Fatalf("recursive remove: %v", err)
	}
	if _, err := c.Resolve(ctx, "/a"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("resolve after recursive remove: %v", err)
	}
	if err := c.RemovePath(ctx, "/", true); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("remove of the root: %v", err)
	}
}

func TestNamespaceByInode(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	dir, err := c.Mkdir(ctx, wire.RootIno, "d", 0o750, 1000, 1000)
	if err != nil || !dir.IsDir() || dir.Mode&wire.ModePerm != 0o750 || dir.Uid != 1000 {
		t.Fatalf("mkdir: %+v %v", dir, err)
	}
	f, err := c.Create(ctx, dir.Ino, "f", 0o600, 1000, 1000, os.O_RDWR|os.O_EXCL)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, f)
	sl, err := c.Symlink(ctx, dir.Ino, "l", "f", 1000, 1000)
	if err != nil || !sl.IsSymlink() {
		t.Fatalf("symlink: %+v %v", sl, err)
	}
	if target, err := c.Readlink(ctx, sl.Ino); err != nil || target != "f" {
		t.Fatalf("readlink = %q, %v", target, err)
	}
	ln, err := c.Link(ctx, f.Ino(), wire.RootIno, "hard")
	if err != nil || ln.Nlink != 2 {
		t.Fatalf("link: %+v %v", ln, err)
	}
	fifo, err := c.Mknod(ctx, dir.Ino, "fifo", wire.ModeFIFO|0o644, 0, 0, 0)
	if err != nil || fifo.Mode&wire.ModeType != wire.ModeFIFO {
		t.Fatalf("mknod: %+v %v", fifo, err)
	}
	if _, err := c.Open(ctx, fifo.Ino, os.O_RDONLY); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("open of a FIFO: %v", err)
	}

	if err := c.SetXattr(ctx, f.Ino(), "user.k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetXattr(ctx, f.Ino(), "user.k"); err != nil || string(v) != "v" {
		t.Fatalf("getxattr = %q, %v", v, err)
	}
	if names, err := c.ListXattr(ctx, f.Ino()); err != nil || !slices.Equal(names, []string{"user.k"}) {
		t.Fatalf("listxattr = %v, %v", names, err)
	}
	if err := c.RemoveXattr(ctx, f.Ino(), "user.k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetXattr(ctx, f.Ino(), "user.k"); !errors.Is(err, wire.ErrNoAttr) {
		t.Fatalf("getxattr of a removed attribute: %v", err)
	}

	attr, err := c.SetAttr(ctx, wire.SetAttrReq{Ino: f.Ino(), Valid: wire.SetMode, Mode: 0o640})
	if err != nil || attr.Mode&wire.ModePerm != 0o640 {
		t.Fatalf("setattr mode: %+v %v", attr, err)
	}
	if err := c.Rename(ctx, dir.Ino, "f", dir.Ino, "l", wire.RenameNoReplace); !errors.Is(err, wire.ErrExist) {
		t.Fatalf("rename noreplace onto an existing name: %v", err)
	}
	if err := c.Unlink(ctx, wire.RootIno, "hard"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rmdir(ctx, wire.RootIno, "d"); !errors.Is(err, wire.ErrNotEmpty) {
		t.Fatalf("rmdir of a full directory: %v", err)
	}
	if _, err := c.Lookup(ctx, wire.RootIno, "nope"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("lookup of a missing name: %v", err)
	}
	st, err := c.StatFS(ctx)
	if err != nil || st.Groups != 1 || st.Total == 0 {
		t.Fatalf("statfs: %+v %v", st, err)
	}
	groups, err := c.Groups(ctx)
	if err != nil || len(groups) != 1 || len(groups[0].Members) != 2 {
		t.Fatalf("groups: %+v %v", groups, err)
	}
	if c.Session() == "" || c.Session() == cl.client(nil).Session() {
		t.Fatal("session ids must be set and distinct")
	}
}

func TestClientCloseAndUseAfter(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := t.Context()
	f := mustCreate(t, c, "/left-open", os.O_WRONLY)
	if err := c.Close(); !errors.Is(err, ErrOpenFiles) {
		t.Fatalf("close with an open file: %v, want ErrOpenFiles", err)
	}
	if _, err := f.WriteAt(ctx, []byte("x"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after client close: %v", err)
	}
	if _, err := c.CreatePath(ctx, "/after", 0o644, os.O_WRONLY); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after client close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
