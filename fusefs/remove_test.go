package fusefs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRemoveAnswersParentAttr removes files and directories from a
// directory whose entries and attributes have expired. The kernel drops
// the directory's attributes after each removal and default_permissions
// asks for them again before the next; the mount must answer that from
// what the removal's reply said, so a removal costs a LOOKUP and the
// removal itself, not a GETATTR of the directory as well. The
// directory's attributes must then still be the metaserver's.
func TestRemoveAnswersParentAttr(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<20)
	c := newClient(t, cl)
	const timeout = time.Second
	m := mountWith(t, c, func(o *Options) { o.AttrTimeout, o.EntryTimeout = timeout, timeout })
	dir := filepath.Join(m.dir, "gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const files, dirs = 30, 5
	for i := 0; i < files; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < dirs; i++ {
		if err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("d%02d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(timeout + 200*time.Millisecond) // names and attributes are stale now

	before := c.Stats().MetaCalls
	for i := 0; i < files; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < dirs-1; i++ {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("d%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Each removal: a LOOKUP of the stale name and the removal; a few
	// more for the directory itself (its own stale entry and attributes).
	removals := files + dirs - 1
	if got, most := c.Stats().MetaCalls-before, int64(2*removals+4); got > most {
		t.Errorf("%d removals took %d metaserver calls, want at most %d (a GETATTR of the directory per removal?)", removals, got, most)
	}

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Lookup(context.Background(), 1, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Sys().(*syscall.Stat_t).Nlink; uint64(got) != uint64(want.Nlink) || want.Nlink != 3 {
		t.Errorf("nlink of the directory after the removals: mount %d, metaserver %d, want 3", got, want.Nlink)
	}
	if got, w := st.ModTime().UnixNano(), want.Mtime; got != w {
		t.Errorf("mtime of the directory after the removals: mount %d, metaserver %d", got, w)
	}
}
