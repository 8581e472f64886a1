package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListJustCreated is ls -l of a directory this mount filled, once the
// attributes of the creates have expired: the listing (READDIRPLUS) must
// refresh the nodes the kernel already knows from the creates, so the
// per-file "no such xattr" lookups ls -l makes (security.selinux, POSIX
// ACLs) are answered by the mount, not by one metaserver call each.
func TestListJustCreated(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<20)
	c := newClient(t, cl)
	const attrTimeout = time.Second
	m := mountWith(t, c, func(o *Options) { o.AttrTimeout = attrTimeout })
	dir := filepath.Join(m.dir, "fresh")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 40
	for i := 0; i < files; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(attrTimeout + 200*time.Millisecond) // what the creates saw is stale now

	before := c.Stats().MetaCalls
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != files {
		t.Fatalf("listed %d entries, want %d", len(entries), files)
	}
	buf := make([]byte, 256)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		for _, name := range []string{"security.selinux", "system.posix_acl_access", "user.none"} {
			if _, err := unix.Lgetxattr(p, name, buf); !errors.Is(err, syscall.ENODATA) {
				t.Fatalf("getxattr %s %s: %v, want ENODATA", e.Name(), name, err)
			}
		}
	}
	// The listing is one page plus whatever the directory's own
	// attributes need; nothing per file.
	if got := c.Stats().MetaCalls - before; got > 5 {
		t.Errorf("listing %d just-created files and asking each for 3 xattrs took %d metaserver calls, want at most 5", files, got)
	}
}

// TestMountWithoutXattrs: with NoXattrs the mount refuses every xattr
// call with ENOSYS, which the kernel reports as EOPNOTSUPP (and then
// stops sending); what the SDK stored stays there, untouched.
func TestMountWithoutXattrs(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<20)
	c := newClient(t, cl)
	m := mountWith(t, c, func(o *Options) { o.NoXattrs = true })
	p := filepath.Join(m.dir, "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.SetXattr(ctx, st.Ino, "user.mime", []byte("video/mp4"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ { // the first call disables xattrs, the second is the kernel's own answer
		if _, err := unix.Lgetxattr(p, "user.mime", buf); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("getxattr through a NoXattrs mount: %v, want EOPNOTSUPP", err)
		}
		if _, err := unix.Llistxattr(p, buf); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("listxattr: %v, want EOPNOTSUPP", err)
		}
		if err := unix.Lsetxattr(p, "user.other", []byte("v"), 0); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("setxattr: %v, want EOPNOTSUPP", err)
		}
		if err := unix.Lremovexattr(p, "user.mime"); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Fatalf("removexattr: %v, want EOPNOTSUPP", err)
		}
	}
	v, err := c.GetXattr(ctx, st.Ino, "user.mime")
	if err != nil || string(v) != "video/mp4" {
		t.Fatalf("xattr through the SDK after the mount refused it: %q, %v", v, err)
	}
	if _, err := c.GetXattr(ctx, st.Ino, "user.other"); err == nil {
		t.Fatal("user.other exists although the mount refused to set it")
	}
}
