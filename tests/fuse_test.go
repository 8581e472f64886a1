package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"
)

// needFUSE skips a test that needs a real mount when this machine cannot
// make one.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("FUSE tests run as root (they also switch to other uids with setpriv)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("fusermount3 missing: run scripts/deps.sh")
	}
}

// mountProc is a `reelfs mount` process of its own.
type mountProc struct {
	*proc
	dir string
}

// startMount mounts the cluster at dir with a separate process and waits
// until the mount is live.
func startMount(t *testing.T, c *cluster, dir string, extra ...string) *mountProc {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// flags after the mount point, as people type it (issue 16)
	args := append([]string{"mount", dir, "--meta", c.meta}, extra...)
	m := &mountProc{proc: startProc(t, args...), dir: dir}
	eventually(t, 30*time.Second, "mount "+dir+" live", func() bool {
		if m.exited() {
			t.Fatalf("reelfs mount exited: %v\n%s", m.err, m.log.String())
		}
		return isFUSEMount(dir)
	})
	t.Cleanup(func() {
		m.stop(t, 30*time.Second)
		exec.Command("fusermount3", "-u", "-z", m.dir).Run()
	})
	return m
}

// isFUSEMount reports whether dir is the root of a reelfs FUSE mount.
func isFUSEMount(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs, _ := filepath.Abs(dir)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == abs && strings.Contains(line, "fuse") {
			return true
		}
	}
	return false
}

func TestPosixSuite(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	skips := map[string]string{
		// POSIX record locks belong to the process: two descriptors of one
		// process never conflict (ext4 agrees); go-fuse's own run of the
		// suite skips this case for the same reason.
		"FcntlFlockLocksFile": "expects two fds of one process to conflict under POSIX locks, which POSIX forbids",
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := skips[name]; ok {
				t.Skip(why)
			}
			dir := filepath.Join(c.mount, "posix-"+name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
		})
	}
}

// treeEntry is what the comparison of two trees looks at.
type treeEntry struct {
	mode   fs.FileMode
	size   int64
	sum    string
	link   string
	mtime  int64 // seconds; directories' mtimes change as entries are added
	inoKey string
}

// manifest walks root and describes every entry; hard links share inoKey
// (the first path seen with that inode).
func manifest(t *testing.T, root string, withMtime bool) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	firstPath := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := treeEntry{mode: info.Mode()}
		if withMtime && !info.IsDir() {
			e.mtime = info.ModTime().Unix()
		}
		st := info.Sys().(*syscall.Stat_t)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.link, _ = os.Readlink(p)
		case info.Mode().IsRegular():
			e.size = info.Size()
			e.sum = fileSum(t, p)
			if st.Nlink > 1 {
				if fp, ok := firstPath[st.Ino]; ok {
					e.inoKey = fp
				} else {
					firstPath[st.Ino] = rel
					e.inoKey = rel
				}
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fileSum(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// makeTree generates n files of mixed sizes (a few up to 64 MiB) in nested
// directories, with symlinks, hard links, odd names, modes and old mtimes.
func makeTree(t *testing.T, root string, n int, big bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	names := []string{"plain", "with space", "ünïcödé", "emoji 🎬", "-dash", "a'quote", "semi;colon", "日本語", "x"}
	dirs := []string{"."}
	for i := 0; i < 40; i++ {
		parent := dirs[rng.IntN(len(dirs))]
		d := filepath.Join(parent, fmt.Sprintf("%s %d", names[rng.IntN(len(names))], i))
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	bigSizes := []int64{64 << 20, 33<<20 + 17, 8 << 20}
	if !big {
		bigSizes = []int64{5<<20 + 3}
	}
	var files []string
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i++ {
		var size int64
		switch {
		case i < len(bigSizes):
			size = bigSizes[i]
		case i%50 == 0:
			size = rng.Int64N(4 << 20)
		case i%7 == 0:
			size = 0
		default:
			size = rng.Int64N(48 << 10)
		}
		p := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("%s-%d.bin", names[rng.IntN(len(names))], i))
		f, err := os.Create(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		for left := size; left > 0; {
			k := min(left, int64(len(buf)))
			for j := range buf[:k] {
				buf[j] = byte(rng.Uint32())
			}
			f.Write(buf[:k])
			left -= k
		}
		f.Close()
		mode := []os.FileMode{0o644, 0o600, 0o755, 0o444, 0o640}[rng.IntN(5)]
		os.Chmod(filepath.Join(root, p), mode)
		mt := time.Date(2001+rng.IntN(20), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
		os.Chtimes(filepath.Join(root, p), mt, mt)
		files = append(files, p)
	}
	for i := 0; i < 20; i++ {
		target := files[rng.IntN(len(files))]
		link := filepath.Join(filepath.Dir(target), fmt.Sprintf("hardlink %d", i))
		if err := os.Link(filepath.Join(root, target), filepath.Join(root, link)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		sl := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("symlink %d", i))
		os.Symlink(fmt.Sprintf("../target %d/ünï", i), filepath.Join(root, sl)) // dangling is fine
	}
}

func compareTrees(t *testing.T, what string, want, got map[string]treeEntry, hardlinks bool) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d entries, want %d", what, len(got), len(want))
	}
	bad := 0
	for p, w := range want {
		g, ok := got[p]
		if !hardlinks {
			w.inoKey, g.inoKey = "", ""
		}
		if !ok || g != w {
			if bad++; bad <= 10 {
				t.Errorf("%s: %q: got %+v, want %+v", what, p, g, w)
			}
		}
	}
}

func TestCopyToolsOnMount(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	src := filepath.Join(t.TempDir(), "src")
	n := 1000
	if testing.Short() {
		n = 200
	}
	makeTree(t, src, n, !testing.Short())
	want := manifest(t, src, true)

	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("cp", "-a", src, filepath.Join(c.mount, "cp"))
	run("rsync", "-a", "-H", src+"/", filepath.Join(c.mount, "rsync")+"/")
	if err := os.Mkdir(filepath.Join(c.mount, "tar"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("sh", "-c", fmt.Sprintf("tar -C %q -cf - . | tar -C %q -xf -", src, filepath.Join(c.mount, "tar")))

	compareTrees(t, "cp -a", want, manifest(t, filepath.Join(c.mount, "cp"), true), true)
	compareTrees(t, "rsync -a", want, manifest(t, filepath.Join(c.mount, "rsync"), true), true)
	compareTrees(t, "tar x", want, manifest(t, filepath.Join(c.mount, "tar"), true), true)

	out, err := exec.Command("rsync", "-a", "-H", "--dry-run", "--itemize-changes", src+"/", filepath.Join(c.mount, "rsync")+"/").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("rsync --dry-run --itemize-changes found differences (%v):\n%s", err, tail(string(out), 3000))
	}
}

// TestRandomOpsIntegrity drives random pwrite, truncate, pread, mmap read
// and write, fsync and reopen on several files at once and checks every
// read against an in-memory model, then again after a remount.
func TestRandomOpsIntegrity(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	ops := 20000
	if testing.Short() {
		ops = 3000
	}
	const nfiles = 4
	const maxSize = 12 << 20
	rng := rand.New(rand.NewPCG(11, 12))
	models := make([][]byte, nfiles)
	files := make([]*os.File, nfiles)
	path := func(i int) string { return filepath.Join(c.mount, fmt.Sprintf("rand%d", i)) }
	for i := range files {
		f, err := os.OpenFile(path(i), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = f
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	check := func(op int, i int, off, n int64) {
		t.Helper()
		got := make([]byte, n)
		k, err := files[i].ReadAt(got, off)
		if err != nil && err != io.EOF {
			t.Fatalf("op %d: pread file %d [%d,+%d): %v", op, i, off, n, err)
		}
		want := []byte{}
		if off < int64(len(models[i])) {
			want = models[i][off:min(off+n, int64(len(models[i])))]
		}
		if !bytes.Equal(got[:k], want) {
			t.Fatalf("op %d: file %d [%d,+%d): read %d bytes differing from the model (%d bytes)", op, i, off, n, k, len(want))
		}
	}
	for op := 0; op < ops; op++ {
		i := rng.IntN(nfiles)
		size := int64(len(models[i]))
		switch r := rng.IntN(100); {
		case r < 40: // pwrite
			off := rng.Int64N(maxSize - 1)
			n := 1 + rng.Int64N(min(256<<10, maxSize-off))
			if rng.IntN(4) == 0 {
				n = 1 + rng.Int64N(64)
			}
			b := randBytes(int(n))
			if _, err := files[i].WriteAt(b, off); err != nil {
				t.Fatalf("op %d: pwrite: %v", op, err)
			}
			if end := off + n; end > size {
				models[i] = append(models[i], make([]byte, end-size)...)
			}
			copy(models[i][off:], b)
		case r < 50: // truncate up or down
			ns := rng.Int64N(maxSize)
			if err := files[i].Truncate(ns); err != nil {
				t.Fatalf("op %d: truncate: %v", op, err)
			}
			if ns < size {
				models[i] = models[i][:ns]
			} else {
				models[i] = append(models[i], make([]byte, ns-size)...)
			}
		case r < 75: // pread
			off := rng.Int64N(maxSize)
			if size > 0 && rng.IntN(2) == 0 {
				off = rng.Int64N(size)
			}
			check(op, i, off, 1+rng.Int64N(512<<10))
		case r < 85: // mmap read or write
			if size == 0 {
				continue
			}
			m, err := syscall.Mmap(int(files[i].Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				t.Fatalf("op %d: mmap: %v", op, err)
			}
			off := rng.Int64N(size)
			n := 1 + rng.Int64N(min(64<<10, size-off))
			if rng.IntN(2) == 0 {
				if !bytes.Equal(m[off:off+n], models[i][off:off+n]) {
					syscall.Munmap(m)
					t.Fatalf("op %d: mmap read of file %d [%d,+%d) differs from the model", op, i, off, n)
				}
			} else {
				b := randBytes(int(n))
				copy(m[off:], b)
				copy(models[i][off:], b)
				if err := msync(m); err != nil {
					t.Fatalf("op %d: msync: %v", op, err)
				}
			}
			if err := syscall.Munmap(m); err != nil {
				t.Fatal(err)
			}
		case r < 90:
			if err := files[i].Sync(); err != nil {
				t.Fatalf("op %d: fsync: %v", op, err)
			}
		default: // close and reopen
			if err := files[i].Close(); err != nil {
				t.Fatalf("op %d: close: %v", op, err)
			}
			f, err := os.OpenFile(path(i), os.O_RDWR, 0)
			if err != nil {
				t.Fatalf("op %d: reopen: %v", op, err)
			}
			files[i] = f
			if st, _ := f.Stat(); st.Size() != int64(len(models[i])) {
				t.Fatalf("op %d: file %d has size %d after reopen, model %d", op, i, st.Size(), len(models[i]))
			}
		}
	}
	for i, f := range files {
		if err := f.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	c.stop()
	c.restart()
	for i := range files {
		got, err := os.ReadFile(path(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, models[i]) {
			t.Fatalf("file %d differs from the model after remount (%d bytes, want %d)", i, len(got), len(models[i]))
		}
	}
}

func msync(b []byte) error { return unix.Msync(b, unix.MS_SYNC) }

func TestTwoMountsCloseToOpen(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	b := startMount(t, c, filepath.Join(c.dir, "mnt-b"))
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 20; round++ {
		name := fmt.Sprintf("c2o-%d", round%4) // rewrites reuse names, so stale caches would show
		data := make([]byte, 1+rng.IntN(6<<20))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(c.mount, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(b.dir, name))
		if err != nil {
			t.Fatalf("round %d: read on mount B: %v", round, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: mount B read %d bytes not equal to the %d written and closed on mount A", round, len(got), len(data))
		}
		// And the other way round, through an in-place overwrite.
		patch := []byte(fmt.Sprintf("round %d from B", round))
		f, err := os.OpenFile(filepath.Join(b.dir, name), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(patch, 0)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		copy(data, patch)
		if got, _ := os.ReadFile(filepath.Join(c.mount, name)); !bytes.Equal(got, data) {
			t.Fatalf("round %d: mount A does not see B's closed write", round)
		}
	}
}

func TestKill9MountDuringCopy(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{})
	mnt := filepath.Join(c.dir, "mnt-k")
	m := startMount(t, c, mnt)
	dir := t.TempDir()
	sums := map[string]string{}
	for i := 0; i < 5; i++ {
		local := filepath.Join(dir, fmt.Sprint(i))
		sums[fmt.Sprint(i)] = writeRandomFile(t, local, int64(1+i*3<<20), uint64(400+i))
		if out, err := exec.Command("cp", local, filepath.Join(mnt, fmt.Sprint(i))).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	big := filepath.Join(dir, "big")
	writeRandomFile(t, big, 512<<20, 499)
	cp := exec.Command("cp", big, filepath.Join(mnt, "big"))
	if err := cp.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "copy under way", func() bool {
		st, err := os.Stat(filepath.Join(mnt, "big"))
		return err == nil && st.Size() > 32<<20
	})
	m.kill() // kill -9 of the mount process mid-copy
	cp.Wait()

	if _, err := os.Stat(filepath.Join(mnt, "0")); err == nil {
		t.Fatal("the dead mount still answers")
	}
	if out, code := runCode(reelfsBin, "umount", mnt); code != 0 {
		t.Fatalf("reelfs umount of the dead mount: %s", out)
	}
	startMount(t, c, mnt)
	for name, sum := range sums {
		if got := fileSum(t, filepath.Join(mnt, name)); got != sum {
			t.Fatalf("%s after kill -9 of the mount: sha256 %s, want %s", name, got, sum)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("usable"), 0o644); err != nil {
		t.Fatalf("the new mount is not usable: %v", err)
	}
}

func runCode(name string, args ...string) (string, int) {
	out, err := exec.Command(name, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return err.Error(), -1
	}
	return string(out), 0
}

func TestErrnosOnMount(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	m := c.mount
	os.MkdirAll(filepath.Join(m, "full/dir"), 0o755)
	os.WriteFile(filepath.Join(m, "full/file"), []byte("x"), 0o644)
	expect := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	expect("rmdir non-empty", syscall.Rmdir(filepath.Join(m, "full")), syscall.ENOTEMPTY)
	expect("mkdir existing", syscall.Mkdir(filepath.Join(m, "full"), 0o755), syscall.EEXIST)
	_, err := os.OpenFile(filepath.Join(m, "full/file"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	expect("O_EXCL existing", err, syscall.EEXIST)
	_, err = os.Stat(filepath.Join(m, "nope"))
	expect("stat missing", err, syscall.ENOENT)
	expect("unlink dir", syscall.Unlink(filepath.Join(m, "full/dir")), syscall.EISDIR)
	expect("rmdir file", syscall.Rmdir(filepath.Join(m, "full/file")), syscall.ENOTDIR)

	// EACCES as a non-root user: a 0700 root directory and a 0600 file.
	// The test's temp dirs are 0700; open the path to the mount so that
	// only the mount's own permissions decide.
	for d := c.dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls", m).CombinedOutput(); err != nil {
		t.Fatalf("uid 65534 cannot list the mount root: %v %s", err, out)
	}
	os.Mkdir(filepath.Join(m, "private"), 0o700)
	os.WriteFile(filepath.Join(m, "secret.txt"), []byte("s"), 0o600)
	for _, args := range [][]string{
		{"ls", filepath.Join(m, "private")},
		{"cat", filepath.Join(m, "secret.txt")},
		{"touch", filepath.Join(m, "private", "x")},
		{"sh", "-c", "echo x > " + filepath.Join(m, "full", "y")},
	} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("as uid 65534, %v: %v %q, want Permission denied", args, err, out)
		}
	}
	// A file created by a non-root user is owned by that user.
	os.Chmod(filepath.Join(m, "full"), 0o777)
	if out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "touch", filepath.Join(m, "full", "mine")).CombinedOutput(); err != nil {
		t.Fatalf("touch as uid 65534: %v %s", err, out)
	}
	if st, err := os.Stat(filepath.Join(m, "full", "mine")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("file created by uid 65534 is owned by %v (%v)", st.Sys().(*syscall.Stat_t).Uid, err)
	}

	// EIO with a log line naming the block and the server.
	data := make([]byte, 5<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	before := blockFiles(t, c)
	if err := os.WriteFile(filepath.Join(m, "victim"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range blockFiles(t, c) {
		if !slices.Contains(before, p) {
			flipByte(t, p)
		}
	}
	c.stop() // drop every cache: a fresh mount must go to the chunkservers
	c.restart()
	_, err = os.ReadFile(filepath.Join(m, "victim"))
	expect("read of a corrupted block", err, syscall.EIO)
	eventually(t, 10*time.Second, "a log line naming block and server", func() bool {
		log := c.log.String()
		return strings.Contains(strings.ToLower(log), "checksum") && strings.Contains(log, "block")
	})
}

func TestENOSPCOnMount(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true, extra: []string{"--reserve", fmt.Sprint(uint64(1) << 60)}})
	f, err := os.Create(filepath.Join(c.mount, "nospace"))
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(make([]byte, 8<<20))
	cerr := f.Close()
	if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(cerr, syscall.ENOSPC) {
		t.Fatalf("write to a full cluster: write %v, close %v; want ENOSPC", werr, cerr)
	}
}
