package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reelfs/reelfs/client"
)

// writeTree makes n files under dir in nested directories, sizes 0 to
// 20 KiB plus two that span several blocks, and an empty directory; it
// returns the sha256 of each by its slash path relative to dir.
func writeTree(t *testing.T, dir string, n int) map[string][32]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(16, 1))
	sums := make(map[string][32]byte, n)
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("d%d/e%d/f%04d.bin", i%7, i%3, i)
		size := r.IntN(20 << 10)
		if i < 2 {
			size = 9<<20 + 17*i
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		sums[rel] = sha256.Sum256(b)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sums
}

// readTree returns the sha256 and inode of every regular file under dir.
func readTree(t *testing.T, dir string) (map[string][32]byte, map[string]uint64) {
	t.Helper()
	sums, inos := map[string][32]byte{}, map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		sums[filepath.ToSlash(rel)] = sha256.Sum256(b)
		inos[filepath.ToSlash(rel)] = info.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums, inos
}

// remoteVersions returns the inode version of every file under p.
func remoteVersions(t *testing.T, c *client.Client, p string) map[string]uint64 {
	t.Helper()
	ctx := context.Background()
	out := map[string]uint64{}
	var walk func(string)
	walk = func(dir string) {
		a, err := c.Resolve(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := c.ReadDirAll(ctx, a.Ino)
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range entries {
			if de.Attr.IsDir() {
				walk(dir + "/" + de.Name)
			} else {
				out[strings.TrimPrefix(dir+"/"+de.Name, p+"/")] = de.Attr.Version
			}
		}
	}
	walk(p)
	return out
}

func TestPutGetTree(t *testing.T) {
	const n = 1000
	tc := newTestCluster(t, 2)
	src := t.TempDir()
	want := writeTree(t, src, n)
	dst := filepath.Join(t.TempDir(), "out")

	summary := func(errOut string) string {
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		return lines[len(lines)-1]
	}
	start := time.Now()
	_, errOut, code := tc.run("put", src, "/media/tree", "-r", "--parallel", "8")
	if code != 0 || !strings.Contains(summary(errOut), fmt.Sprintf("%d files: %d copied", n, n)) {
		t.Fatalf("put -r: exit %d: %s", code, errOut)
	}
	t.Logf("put -r of %d files: %v", n, time.Since(start))
	out, _, _ := runWith(tc.meta, nil, "ls", "/media/tree/empty")
	if strings.TrimSpace(out) != "dir" {
		t.Fatalf("empty directory not copied: ls says %q", out)
	}
	_, errOut, code = tc.run("get", "-r", "/media/tree", dst)
	if code != 0 || !strings.Contains(summary(errOut), fmt.Sprintf("%d files: %d copied", n, n)) {
		t.Fatalf("get -r: exit %d: %s", code, errOut)
	}
	got, inos := readTree(t, dst)
	if len(got) != n {
		t.Fatalf("get -r brought %d files, want %d", len(got), n)
	}
	for rel, sum := range want {
		if got[rel] != sum {
			t.Fatalf("%s: sha256 differs after put -r and get -r", rel)
		}
	}
	if info, err := os.Stat(filepath.Join(dst, "d0", "e0", "f0000.bin")); err != nil || info.Mode().Perm() != 0o640 {
		t.Fatalf("mode not kept: %v %v", info.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dst, "empty", "dir")); err != nil {
		t.Fatalf("empty directory not brought back: %v", err)
	}

	// A second run of each transfers nothing: no remote file gets a new
	// version, no local file a new inode.
	c := newCLIClient(t, tc.meta)
	versions := remoteVersions(t, c, "/media/tree")
	_, errOut, code = tc.run("put", "-r", src, "/media/tree", "--progress")
	if code != 0 || !strings.Contains(summary(errOut), fmt.Sprintf("0 copied (0 B), %d identical skipped, 0 failed", n)) {
		t.Fatalf("second put -r: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "put /media/tree") || !strings.Contains(errOut, "100%") {
		t.Fatalf("put -r --progress showed no bar reaching 100%%: %q", errOut)
	}
	_, errOut, code = tc.run("get", "-r", "/media/tree", dst)
	if code != 0 || !strings.Contains(summary(errOut), fmt.Sprintf("0 copied (0 B), %d identical skipped, 0 failed", n)) {
		t.Fatalf("second get -r: exit %d: %s", code, errOut)
	}
	if after := remoteVersions(t, c, "/media/tree"); fmt.Sprint(after) != fmt.Sprint(versions) {
		t.Fatal("the second put -r changed remote files")
	}
	if _, after := readTree(t, dst); fmt.Sprint(after) != fmt.Sprint(inos) {
		t.Fatal("the second get -r rewrote local files")
	}

	// Same size, other bytes: copied again in both directions. The remote
	// change goes through the SDK, so the recorded sha256 is stale and the
	// file is read to compare.
	changed := filepath.Join(src, "d1", "e1", "f0001.bin")
	b, _ := os.ReadFile(changed)
	b[len(b)/2] ^= 0xff
	os.WriteFile(changed, b, 0o640)
	_, errOut, _ = tc.run("put", "-r", src, "/media/tree")
	if !strings.Contains(summary(errOut), fmt.Sprintf("1 copied (%s), %d identical skipped", human(uint64(len(b))), n-1)) {
		t.Fatalf("put -r after one local change: %s", errOut)
	}
	ctx := context.Background()
	f, err := c.OpenPath(ctx, "/media/tree/d3/e0/f0003.bin", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, []byte{'X'}, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, errOut, _ = tc.run("get", "-r", "/media/tree", dst)
	if !strings.Contains(summary(errOut), "2 copied") {
		t.Fatalf("get -r after two changes: %s", errOut)
	}
	got, _ = readTree(t, dst)
	if got["d1/e1/f0001.bin"] != sha256.Sum256(b) {
		t.Fatal("changed file not brought back")
	}
}

func newCLIClient(t *testing.T, meta string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Meta = meta
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPutTreeEdges: the root may be a link to a directory, links inside
// are skipped with a warning, and a file is not a tree.
func TestPutTreeEdges(t *testing.T) {
	tc := newTestCluster(t, 1)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "sub", "a"), []byte("a"), 0o644)
	os.Symlink("sub/a", filepath.Join(src, "link"))
	os.Symlink(src, filepath.Join(dir, "rootlink"))

	_, errOut, code := tc.run("put", "-r", filepath.Join(dir, "rootlink"), "/t")
	if code != 0 || !strings.Contains(errOut, "1 files: 1 copied") || !strings.Contains(errOut, "skipping "+filepath.Join(src, "link")) {
		t.Fatalf("put -r through a linked root: exit %d: %s", code, errOut)
	}
	if out := tc.mustRun("cat", "/t/sub/a"); out != "a" {
		t.Fatalf("cat /t/sub/a: %q", out)
	}
	_, errOut, code = tc.run("put", "-r", filepath.Join(src, "sub", "a"), "/t2")
	if code != 1 || !strings.Contains(errOut, "not a directory") {
		t.Fatalf("put -r of a file: exit %d: %s", code, errOut)
	}
	_, errOut, code = tc.run("get", "-r", "/t/sub/a", filepath.Join(dir, "out"))
	if code != 1 || !strings.Contains(errOut, "not a directory") {
		t.Fatalf("get -r of a file: exit %d: %s", code, errOut)
	}
	if _, _, code = tc.run("put", "-r", src, "/t", "--parallel", "0"); code != 2 {
		t.Fatalf("--parallel 0: exit %d, want 2", code)
	}
}
