package fusefs

import (
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
