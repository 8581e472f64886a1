package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"

	"github.com/reelfs/reelfs/internal/wire"
)

// posixSkips are the go-fuse posixtest cases not run, and why.
var posixSkips = map[string]string{
	// The case takes an fcntl write lock on one descriptor and expects a
	// read lock on a second descriptor of the same process to fail. POSIX
	// record locks belong to the process, so that lock must succeed (it
	// does on ext4 too); go-fuse's own TestAll skips the case as well.
	"FcntlFlockLocksFile": "expects two descriptors of one process to conflict under POSIX record locks, which POSIX forbids",
}

// randBytes is n reproducible pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustWrite(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

func subdir(t *testing.T, m *mounted, name string) string {
	t.Helper()
	dir := filepath.Join(m.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
	return dir
}

// TestMount runs go-fuse's POSIX suite and reelfs's own cases on one mount
// of an in-process cluster (a metaserver and two chunkservers).
func TestMount(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 2, 1<<20)
	m := mountTest(t, newClient(t, cl))

	t.Run("posixtest", func(t *testing.T) {
		names := make([]string, 0, len(posixtest.All))
		for name := range posixtest.All {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			t.Run(name, func(t *testing.T) {
				if why, ok := posixSkips[name]; ok {
					t.Skip(why)
				}
				if name == "OpenSymlinkRace" && testing.Short() {
					t.Skip("1000 rename rounds; skipped with -short")
				}
				posixtest.All[name](t, subdir(t, m, "posix-"+name))
			})
		}
	})
	t.Run("BasicFile", func(t *testing.T) { testBasicFile(t, subdir(t, m, "basic")) })
	t.Run("Truncate", func(t *testing.T) { testTruncate(t, subdir(t, m, "truncate")) })
	t.Run("SparseHoles", func(t *testing.T) { testSparse(t, subdir(t, m, "sparse")) })
	t.Run("Append", func(t *testing.T) { testAppend(t, subdir(t, m, "append")) })
	t.Run("RenameFlags", func(t *testing.T) { testRenameFlags(t, subdir(t, m, "rename")) })
	t.Run("HardLinks", func(t *testing.T) { testHardLinks(t, subdir(t, m, "links")) })
	t.Run("Xattrs", func(t *testing.T) { testXattrs(t, subdir(t, m, "xattr")) })
	t.Run("Mkfifo", func(t *testing.T) { testFIFO(t, subdir(t, m, "fifo")) })
	t.Run("Fallocate", func(t *testing.T) { testFallocate(t, subdir(t, m, "falloc")) })
	t.Run("Flock", func(t *testing.T) { testFlock(t, subdir(t, m, "flock")) })
	t.Run("RecordLocks", func(t *testing.T) { testRecordLocks(t, subdir(t, m, "fcntl")) })
	t.Run("Mmap", func(t *testing.T) { testMmap(t, subdir(t, m, "mmap")) })
	t.Run("UnlinkWhileOpen", func(t *testing.T) { testUnlinkOpen(t, subdir(t, m, "orphan")) })
	t.Run("Permissions", func(t *testing.T) { testPermissions(t, m) })
	t.Run("Statfs", func(t *testing.T) { testStatfs(t, m.dir) })
}

func testBasicFile(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	data := randBytes(1, 5<<20+123) // more than one block, not aligned
	mustWrite(t, p, data, 0o640)
	sameBytes(t, "read back", mustRead(t, p), data)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(data)) || st.Mode().Perm() != 0o640 {
		t.Errorf("stat: size %d mode %v, want %d and -rw-r-----", st.Size(), st.Mode(), len(data))
	}
	// Overwrite the middle through a second descriptor; a reader open at
	// the same time sees the bytes at once (one state per inode).
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte("seek-back header patch")
	if _, err := w.WriteAt(patch, 4<<20-5); err != nil {
		t.Fatal(err)
	}
	copy(data[4<<20-5:], patch)
	got := make([]byte, len(patch))
	if _, err := r.ReadAt(got, 4<<20-5); err != nil || !bytes.Equal(got, patch) {
		t.Errorf("reader sees %q, %v; want %q", got, err, patch)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "after patch", mustRead(t, p), data)
	// O_EXCL on an existing name.
	if _, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL create of an existing file: %v, want EEXIST", err)
	}
	// Names longer than NAME_MAX.
	long := filepath.Join(dir, strings.Repeat("x", wire.MaxNameLen+1))
	if err := os.WriteFile(long, nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("create of a %d-byte name: %v, want ENAMETOOLONG", wire.MaxNameLen+1, err)
	}
	// Directories: not empty, then empty.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(sub, "x"), []byte("x"), 0o644)
	if err := syscall.Rmdir(sub); err != syscall.ENOTEMPTY {
		t.Errorf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
	}
	if err := os.RemoveAll(sub); err != nil {
		t.Errorf("remove all: %v", err)
	}
	if _, err := os.Stat(sub); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat after removal: %v", err)
	}
	// Symlinks.
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "through a symlink", mustRead(t, filepath.Join(dir, "l")), data)
	// chmod, chown, utimes.
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 5}, {Sec: 1_100_000_000, Nsec: 7}}
	if err := unix.UtimesNano(p, ts); err != nil {
		t.Fatal(err)
	}
	var sst unix.Stat_t
	if err := unix.Stat(p, &sst); err != nil {
		t.Fatal(err)
	}
	if sst.Mode&0o7777 != 0o600 || sst.Uid != 1234 || sst.Gid != 5678 ||
		sst.Atim != ts[0] || sst.Mtim != ts[1] {
		t.Errorf("after chmod/chown/utimes: mode %o uid %d gid %d atime %v mtime %v", sst.Mode, sst.Uid, sst.Gid, sst.Atim, sst.Mtim)
	}
	// UTIME_OMIT keeps atime, UTIME_NOW moves mtime.
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(p, &sst); err != nil {
		t.Fatal(err)
	}
	if sst.Atim != ts[0] || sst.Mtim.Sec <= ts[1].Sec {
		t.Errorf("after UTIME_OMIT/UTIME_NOW: atime %v mtime %v", sst.Atim, sst.Mtim)
	}
}

func testTruncate(t *testing.T, dir string) {
	p := filepath.Join(dir, "t")
	data := bytes.Repeat([]byte("0123456789"), 10)
	mustWrite(t, p, data, 0o644)
	if err := os.Truncate(p, 40); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "truncated down", mustRead(t, p), data[:40])
	if err := os.Truncate(p, 8192+10); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(data[:40]), make([]byte, 8192+10-40)...)
	sameBytes(t, "truncated up", mustRead(t, p), want)

	// ftruncate cuts unflushed writes shared by every handle.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 10)
	n, _ := f.ReadAt(got, 0)
	sameBytes(t, "ftruncate down and up", got[:n], []byte("ab\x00\x00\x00"))
	// A path truncate of the open file works on the same state.
	if _, err := f.WriteAt([]byte("0123456789"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 3 {
		t.Errorf("fstat after path truncate: %v, %v; want size 3", st, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "after close", mustRead(t, p), []byte("012"))
}

func testSparse(t *testing.T, dir string) {
	p := filepath.Join(dir, "s")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	far := int64(wire.ChunkSize + 6<<20) // past the first chunk
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tail"), far); err != nil {
		t.Fatal(err)
	}
	check := func(when string, r *os.File) {
		t.Helper()
		hole := make([]byte, 64<<10)
		for _, off := range []int64{4, 1 << 20, wire.ChunkSize - 100, wire.ChunkSize, far - int64(len(hole))} {
			n, err := r.ReadAt(hole, off)
			if err != nil || n != len(hole) {
				t.Fatalf("%s: read hole at %d: %d, %v", when, off, n, err)
			}
			if !bytes.Equal(hole, make([]byte, len(hole))) {
				t.Fatalf("%s: hole at %d is not zeros", when, off)
			}
		}
		tail := make([]byte, 10)
		n, _ := r.ReadAt(tail, far)
		sameBytes(t, when+": tail", tail[:n], []byte("tail"))
		if st, err := r.Stat(); err != nil || st.Size() != far+4 {
			t.Fatalf("%s: stat %v, %v; want size %d", when, st, err, far+4)
		}
	}
	check("before close", f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check("after close", r)
}

func testAppend(t *testing.T, dir string) {
	p := filepath.Join(dir, "a")
	mustWrite(t, p, []byte(">"), 0o644)
	var fs []*os.File
	for i := 0; i < 2; i++ {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	var want []byte
	want = append(want, '>')
	for i := 0; i < 10; i++ {
		for j, f := range fs {
			b := []byte{byte('a' + j)}
			if _, err := f.Write(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, b...)
		}
	}
	for _, f := range fs {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sameBytes(t, "two appenders", mustRead(t, p), want)
}

func testRenameFlags(t *testing.T, dir string) {
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	mustWrite(t, a, []byte("A"), 0o644)
	mustWrite(t, b, []byte("B"), 0o644)
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Errorf("RENAME_NOREPLACE onto an existing name: %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Fatalf("RENAME_EXCHANGE: %v", err)
	}
	sameBytes(t, "a after exchange", mustRead(t, a), []byte("B"))
	sameBytes(t, "b after exchange", mustRead(t, b), []byte("A"))
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, c, unix.RENAME_NOREPLACE); err != nil {
		t.Fatalf("RENAME_NOREPLACE to a new name: %v", err)
	}
	sameBytes(t, "c", mustRead(t, c), []byte("B"))
	if err := unix.Renameat2(unix.AT_FDCWD, c, unix.AT_FDCWD, a, unix.RENAME_WHITEOUT); err != unix.EINVAL {
		t.Errorf("RENAME_WHITEOUT: %v, want EINVAL", err)
	}
	// Plain rename over an existing file replaces it.
	if err := os.Rename(c, b); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "b after rename over it", mustRead(t, b), []byte("B"))
	if _, err := os.Stat(c); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old name after rename: %v", err)
	}
	// A directory cannot move below itself.
	d := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(d, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d, filepath.Join(d, "e", "d")); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("rename of a directory into itself: %v, want EINVAL", err)
	}
}

func testHardLinks(t *testing.T, dir string) {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mustWrite(t, a, []byte("linked"), 0o644)
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino || sb.Nlink != 2 {
		t.Errorf("link: inodes %d and %d, nlink %d; want one inode with nlink 2", sa.Ino, sb.Ino, sb.Nlink)
	}
	// Writing through one name shows through the other.
	mustWrite(t, b, []byte("changed"), 0o644)
	sameBytes(t, "through the first name", mustRead(t, a), []byte("changed"))
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(b, &sb); err != nil || sb.Nlink != 1 {
		t.Errorf("after removing one name: %v, nlink %d", err, sb.Nlink)
	}
	sameBytes(t, "after removing one name", mustRead(t, b), []byte("changed"))
	if err := os.Link(dir, filepath.Join(dir, "dirlink")); !errors.Is(err, syscall.EPERM) {
		t.Errorf("hard link to a directory: %v, want EPERM", err)
	}
}

func testXattrs(t *testing.T, dir string) {
	p := filepath.Join(dir, "x")
	mustWrite(t, p, nil, 0o644)
	if err := unix.Setxattr(p, "user.mime", []byte("video/mp4"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(p, "user.mime", nil); err != nil || n != 9 {
		t.Errorf("size probe: %d, %v; want 9", n, err)
	}
	small := make([]byte, 4)
	if _, err := unix.Getxattr(p, "user.mime", small); err != unix.ERANGE {
		t.Errorf("getxattr into 4 bytes: %v, want ERANGE", err)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(p, "user.mime", buf); err != nil || string(buf[:n]) != "video/mp4" {
		t.Errorf("getxattr: %q, %v", buf[:n], err)
	}
	if n, err := unix.Getxattr(p, "user.empty", buf); err != nil || n != 0 {
		t.Errorf("empty value: %d, %v", n, err)
	}
	n, err := unix.Listxattr(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Listxattr(p, make([]byte, n-1)); err != unix.ERANGE {
		t.Errorf("listxattr into a short buffer: %v, want ERANGE", err)
	}
	list := make([]byte, n)
	if _, err := unix.Listxattr(p, list); err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimRight(string(list), "\x00"), "\x00")
	slices.Sort(names)
	if !slices.Equal(names, []string{"user.empty", "user.mime"}) {
		t.Errorf("listxattr: %q", names)
	}
	if err := unix.Setxattr(p, "user.mime", []byte("x"), unix.XATTR_CREATE); err != unix.EEXIST {
		t.Errorf("XATTR_CREATE of an existing name: %v, want EEXIST", err)
	}
	if err := unix.Setxattr(p, "user.none", []byte("x"), unix.XATTR_REPLACE); err != unix.ENODATA {
		t.Errorf("XATTR_REPLACE of a missing name: %v, want ENODATA", err)
	}
	// struct vfs_cap_data, revision 2, no capabilities.
	capData := []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Setxattr(p, "security.capability", capData, 0); err != unix.ENOTSUP {
		t.Errorf("setting file capabilities: %v, want ENOTSUP", err)
	}
	if err := unix.Removexattr(p, "user.mime"); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Getxattr(p, "user.mime", buf); err != unix.ENODATA {
		t.Errorf("after removexattr: %v, want ENODATA", err)
	}
	if err := unix.Removexattr(p, "user.mime"); err != unix.ENODATA {
		t.Errorf("removexattr of a missing name: %v, want ENODATA", err)
	}
	// Directories carry xattrs too.
	if err := unix.Setxattr(dir, "user.dir", []byte("d"), 0); err != nil {
		t.Errorf("setxattr on a directory: %v", err)
	}
}

func testFIFO(t *testing.T, dir string) {
	p := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(p, 0o640); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o777 != 0o640 {
		t.Fatalf("mode %o, want a FIFO with 0640", st.Mode)
	}
	// The kernel runs the pipe; O_RDWR opens without waiting for a peer.
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("through the pipe")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Read(fd, buf)
	if err != nil || string(buf[:n]) != "through the pipe" {
		t.Errorf("read from the FIFO: %q, %v", buf[:n], err)
	}
	if err := unix.Mknod(filepath.Join(dir, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Errorf("mknod of a socket: %v", err)
	}
}

func testFallocate(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	if err := unix.Fallocate(fd, 0, 0, 1<<20); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if st, _ := f.Stat(); st.Size() != 1<<20 {
		t.Errorf("size after fallocate: %d, want %d", st.Size(), 1<<20)
	}
	if err := unix.Fallocate(fd, 0, 10, 10); err != nil {
		t.Fatalf("fallocate inside the file: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 4<<20); err != nil {
		t.Fatalf("fallocate KEEP_SIZE: %v", err)
	}
	if st, _ := f.Stat(); st.Size() != 1<<20 {
		t.Errorf("size after KEEP_SIZE: %d, want %d", st.Size(), 1<<20)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096); err != unix.EOPNOTSUPP {
		t.Errorf("punch hole: %v, want EOPNOTSUPP", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("data"), make([]byte, 1<<20-4)...)
	sameBytes(t, "after fallocate", mustRead(t, p), want)
}

func openN(t *testing.T, p string, n int) []*os.File {
	t.Helper()
	var fs []*os.File
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
	}
	return fs
}

func testFlock(t *testing.T, dir string) {
	fs := openN(t, filepath.Join(dir, "lock"), 3)
	fd := func(i int) int { return int(fs[i].Fd()) }
	if err := unix.Flock(fd(0), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(fd(1), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("second exclusive flock: %v, want EWOULDBLOCK", err)
	}
	if err := unix.Flock(fd(1), unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("shared flock under an exclusive one: %v, want EWOULDBLOCK", err)
	}
	// A blocking flock waits for the holder.
	got := make(chan error, 1)
	go func() { got <- unix.Flock(fd(2), unix.LOCK_EX) }()
	if err := unix.Flock(fd(0), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("blocking flock: %v", err)
	}
	if err := unix.Flock(fd(1), unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("flock while the waiter holds it: %v, want EWOULDBLOCK", err)
	}
	// Closing the holder's descriptor releases its lock. The kernel tells
	// a FUSE filesystem in RELEASE, which it sends after close(2)
	// returned, so the release is seen a moment later.
	if err := fs[2].Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Flock(fd(1), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			t.Fatalf("shared flock after the holder closed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := unix.Flock(fd(0), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		t.Errorf("second shared flock: %v", err)
	}
}

func testRecordLocks(t *testing.T, dir string) {
	fs := openN(t, filepath.Join(dir, "lock"), 3)
	// OFD locks belong to the open file, so two descriptors of this
	// process are two owners.
	lock := func(i int, cmd int, typ int16, start, length int64) error {
		lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
		return unix.FcntlFlock(fs[i].Fd(), cmd, &lk)
	}
	if err := lock(0, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 100); err != nil {
		t.Fatal(err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_RDLCK, 50, 10); err != unix.EAGAIN {
		t.Errorf("read lock inside another's write lock: %v, want EAGAIN", err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_WRLCK, 100, 100); err != nil {
		t.Errorf("write lock next to another's: %v", err)
	}
	q := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 10}
	if err := unix.FcntlFlock(fs[1].Fd(), unix.F_OFD_GETLK, &q); err != nil {
		t.Fatal(err)
	}
	if q.Type != unix.F_WRLCK || q.Start != 0 || q.Len != 100 {
		t.Errorf("F_OFD_GETLK: %+v, want the write lock on [0,100)", q)
	}
	// Unlocking the middle splits the lock.
	if err := lock(0, unix.F_OFD_SETLK, unix.F_UNLCK, 40, 20); err != nil {
		t.Fatal(err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_RDLCK, 45, 10); err != nil {
		t.Errorf("read lock in the unlocked middle: %v", err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_RDLCK, 30, 5); err != unix.EAGAIN {
		t.Errorf("read lock on the kept head: %v, want EAGAIN", err)
	}
	// A blocking lock waits until the holder lets go.
	got := make(chan error, 1)
	go func() { got <- lock(1, unix.F_OFD_SETLKW, unix.F_WRLCK, 0, 10) }()
	if err := lock(0, unix.F_OFD_SETLK, unix.F_UNLCK, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("F_OFD_SETLKW: %v", err)
	}
	if err := lock(0, unix.F_OFD_SETLK, unix.F_RDLCK, 5, 1); err != unix.EAGAIN {
		t.Errorf("lock over the waiter's new lock: %v, want EAGAIN", err)
	}

	// Process-owned locks: this process's locks never conflict with each
	// other, do conflict with OFD locks, and all go when the process
	// closes any descriptor of the file.
	if err := lock(0, unix.F_SETLK, unix.F_WRLCK, 1000, 10); err != nil {
		t.Fatal(err)
	}
	if err := lock(2, unix.F_SETLK, unix.F_WRLCK, 1005, 10); err != nil {
		t.Errorf("second record lock of the same process: %v", err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_RDLCK, 1000, 1); err != unix.EAGAIN {
		t.Errorf("OFD lock over the process's lock: %v, want EAGAIN", err)
	}
	if err := fs[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := lock(1, unix.F_OFD_SETLK, unix.F_WRLCK, 1000, 20); err != nil {
		t.Errorf("OFD lock after the process closed a descriptor: %v", err)
	}
	// OFD locks go with their open file: a waiter gets the range once
	// the holding descriptor is closed.
	go func() { got <- lock(0, unix.F_OFD_SETLKW, unix.F_WRLCK, 0, 0) }()
	if err := fs[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("F_OFD_SETLKW after the holder closed: %v", err)
	}
}

// mmapHelperEnv names the directory TestMmapHelperProcess works in.
const mmapHelperEnv = "REELFS_FUSEFS_MMAP_DIR"

// testMmap runs the mmap checks in a child process (this test binary
// again, running only TestMmapHelperProcess). Touching a mapping of a file
// on a FUSE mount served by the same Go process can deadlock it: the
// faulting thread is stuck in the kernel with no safepoint, so a garbage
// collection's stop-the-world waits for it, while the goroutines that
// would answer the fault's READ wait for the stop-the-world. CI hung that
// way in this test, twice.
func testMmap(t *testing.T, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMmapHelperProcess$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), mmapHelperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestMmapHelperProcess")) {
		t.Fatalf("mmap checks in a child process: %v\n%s", err, out)
	}
}

// TestMmapHelperProcess is testMmap's child process; it skips unless
// mmapHelperEnv names a directory on a mount.
func TestMmapHelperProcess(t *testing.T) {
	dir := os.Getenv(mmapHelperEnv)
	if dir == "" {
		t.Skip("runs only as testMmap's child process")
	}
	mmapChecks(t, dir)
}

// mmapChecks writes through a shared mapping (then msync) and reads a
// file through a read-only mapping, comparing both with read(2).
func mmapChecks(t *testing.T, dir string) {
	p := filepath.Join(dir, "m")
	const size = 3 * 4096
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	copy(mem[100:], "written through mmap")
	copy(want[100:], "written through mmap")
	mem[2*4096+5] = 7
	want[2*4096+5] = 7
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "read after msync", mustRead(t, p), want)

	// And a read-only mapping of what write(2) put there.
	data := randBytes(7, 50000)
	mustWrite(t, p, data, 0o644)
	r, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mem, err = unix.Mmap(int(r.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	sameBytes(t, "read through mmap", mem, data)
}

func testUnlinkOpen(t *testing.T, dir string) {
	p := filepath.Join(dir, "o")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(" and after")); err != nil {
		t.Fatalf("write to an unlinked file: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync of an unlinked file: %v", err)
	}
	got := make([]byte, 64)
	n, _ := f.ReadAt(got, 0)
	sameBytes(t, "read of an unlinked file", got[:n], []byte("before and after"))
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatalf("fstat of an unlinked file: %v", err)
	}
	if st.Nlink != 0 || st.Size != 16 {
		t.Errorf("fstat of an unlinked file: nlink %d size %d, want 0 and 16", st.Nlink, st.Size)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of the removed name: %v", err)
	}
	// A new file may take the name while the orphan lives on.
	mustWrite(t, p, []byte("new"), 0o644)
	n, _ = f.ReadAt(got, 0)
	sameBytes(t, "orphan after reuse of its name", got[:n], []byte("before and after"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "the new file", mustRead(t, p), []byte("new"))
}

// asNobody runs a command as uid/gid 65534 and returns its combined output.
func asNobody(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testPermissions(t *testing.T, m *mounted) {
	// Let other users reach the mount point: t.TempDir makes 0700 dirs.
	for d := filepath.Dir(m.dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	private := subdir(t, m, "private")
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(private, "secret"), []byte("secret"), 0o644)
	public := subdir(t, m, "public")
	mustWrite(t, filepath.Join(public, "readme"), []byte("hello"), 0o644)
	mustWrite(t, filepath.Join(public, "mine"), []byte("root's"), 0o600)

	if out, err := asNobody(t, "cat", filepath.Join(public, "readme")); err != nil || out != "hello" {
		t.Errorf("nobody reading a 0644 file: %q, %v", out, err)
	}
	if out, err := asNobody(t, "cat", filepath.Join(private, "secret")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody reading in a 0700 directory: %q, %v; want Permission denied", out, err)
	}
	if out, err := asNobody(t, "cat", filepath.Join(public, "mine")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody reading a 0600 file: %q, %v; want Permission denied", out, err)
	}
	if out, err := asNobody(t, "touch", filepath.Join(public, "new")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody creating in a 0755 directory: %q, %v; want Permission denied", out, err)
	}
	// New files belong to their creator; a setgid directory passes its
	// group on.
	shared := subdir(t, m, "shared")
	if err := os.Chown(shared, 0, 4242); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if out, err := asNobody(t, "sh", "-c", fmt.Sprintf("echo x > %s/n && mkdir %s/d", shared, shared)); err != nil {
		t.Fatalf("nobody creating in a 0777 directory: %q, %v", out, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(shared, "n"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 65534 || st.Gid != 4242 {
		t.Errorf("file made by nobody in a setgid directory: uid %d gid %d, want 65534 and 4242", st.Uid, st.Gid)
	}
	if err := unix.Stat(filepath.Join(shared, "d"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Gid != 4242 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("directory made in a setgid directory: gid %d mode %o, want 4242 and setgid", st.Gid, st.Mode)
	}
	// Only the owner may chmod.
	if out, err := asNobody(t, "chmod", "0777", filepath.Join(public, "readme")); err == nil {
		t.Errorf("nobody chmod of root's file: %q, want EPERM", out)
	}
}

func testStatfs(t *testing.T, dir string) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bsize != statfsBlock || st.Frsize != statfsBlock || st.Blocks == 0 || st.Bfree > st.Blocks ||
		st.Bavail > st.Blocks || st.Namelen != wire.MaxNameLen || st.Ffree == 0 {
		t.Errorf("statfs: %+v", st)
	}
}

// TestTwoMounts checks close-to-open consistency and page-cache reuse
// between two mounts (two clients) of one cluster.
func TestTwoMounts(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 2, 1<<20)
	a := mountTest(t, newClient(t, cl))
	b := mountTest(t, newClient(t, cl))
	pa, pb := filepath.Join(a.dir, "shared.bin"), filepath.Join(b.dir, "shared.bin")

	v1 := randBytes(11, 3<<20+77)
	mustWrite(t, pa, v1, 0o644)
	sameBytes(t, "B reads A's first version", mustRead(t, pb), v1)

	// Reading an unchanged file again is served from B's page cache. The
	// first read's asynchronous read-ahead may still be completing, so
	// the count is taken once it has settled.
	reads := b.ops(t, "read")
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		now := b.ops(t, "read")
		if now == reads {
			break
		}
		reads = now
	}
	sameBytes(t, "B re-reads", mustRead(t, pb), v1)
	if got := b.ops(t, "read"); got != reads {
		t.Errorf("re-reading an unchanged file sent %v reads to the filesystem, want 0 (FOPEN_KEEP_CACHE)", got-reads)
	}

	// A rewrites it bigger, same prefix length changed: B's cached pages
	// and size must go at open.
	v2 := randBytes(12, 4<<20+5)
	mustWrite(t, pa, v2, 0o644)
	sameBytes(t, "B reads A's second version", mustRead(t, pb), v2)
	// And smaller.
	v3 := randBytes(13, 1000)
	mustWrite(t, pa, v3, 0o644)
	sameBytes(t, "B reads A's third version", mustRead(t, pb), v3)

	// While A writes without closing, A's stat shows its own size; B
	// sees the last committed version until A closes and B opens again.
	f, err := os.OpenFile(pa, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := randBytes(14, 70000)
	if _, err := f.Write(extra); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(pa); err != nil || st.Size() != int64(len(v3)+len(extra)) {
		t.Errorf("A's stat while writing: %v, %v; want size %d", st, err, len(v3)+len(extra))
	}
	sameBytes(t, "B before A closes", mustRead(t, pb), v3)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "B after A closes", mustRead(t, pb), append(slices.Clone(v3), extra...))

	// A listing on B carries the attributes (READDIRPLUS), so ls -l on a
	// directory B never looked into needs no lookup per entry.
	dirA := filepath.Join(a.dir, "many")
	if err := os.Mkdir(dirA, 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 30
	for i := 0; i < files; i++ {
		mustWrite(t, filepath.Join(dirA, fmt.Sprintf("f%02d", i)), randBytes(uint64(i), i*100), 0o644)
	}
	lookups := b.ops(t, "lookup")
	entries, err := os.ReadDir(filepath.Join(b.dir, "many"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != files {
		t.Fatalf("B lists %d entries, want %d", len(entries), files)
	}
	for i, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() != int64(i*100) {
			t.Errorf("B: %s has size %d, want %d", e.Name(), info.Size(), i*100)
		}
	}
	if got := b.ops(t, "lookup") - lookups; got > 2 {
		t.Errorf("ls -l of %d files sent %v lookups, want at most 2", files, got)
	}
}

// TestNoSpace checks that a full cluster fails writes with ENOSPC.
func TestNoSpace(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<62) // the reserve is larger than any disk
	m := mountTest(t, newClient(t, cl))
	f, err := os.Create(filepath.Join(m.dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write(randBytes(3, 1<<20))
	cerr := f.Close()
	if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(cerr, syscall.ENOSPC) {
		t.Fatalf("write to a full cluster: write %v, close %v; want ENOSPC", werr, cerr)
	}
}

// TestUnmountBusy checks that Unmount detaches a busy mount lazily: open
// files keep working, and serving ends when the last one is closed.
func TestUnmountBusy(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<20)
	c := newClient(t, cl)
	dir := t.TempDir()
	opt := DefaultOptions()
	opt.Logger = testLogger(t)
	m, err := Mount(context.Background(), c, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "busy"))
	if err != nil {
		m.Unmount()
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("before unmount;")); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatalf("unmount of a busy mount: %v", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+dir+" ") {
		t.Errorf("%s is still in the mount table after a lazy unmount", dir)
	}
	if _, err := f.Write([]byte(" after")); err != nil {
		t.Errorf("write after a lazy unmount: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close after a lazy unmount: %v", err)
	}
	m.Wait()

	ctx := context.Background()
	a, err := c.Lookup(ctx, wire.RootIno, "busy")
	if err != nil {
		t.Fatal(err)
	}
	rf, err := c.Open(ctx, a.Ino, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close(ctx)
	buf := make([]byte, 64)
	n, _ := rf.ReadAt(ctx, buf, 0)
	sameBytes(t, "committed content", buf[:n], []byte("before unmount; after"))
}

// TestMountRefuses checks Mount's argument checks, which need no cluster.
func TestMountRefuses(t *testing.T) {
	opt := DefaultOptions()
	opt.MaxWrite = 3
	if _, err := Mount(context.Background(), nil, t.TempDir(), opt); !errors.Is(err, ErrBadOptions) {
		t.Errorf("bad options: %v, want ErrBadOptions", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	mustWrite(t, file, nil, 0o644)
	if _, err := Mount(context.Background(), nil, file, DefaultOptions()); !errors.Is(err, ErrNotDir) {
		t.Errorf("mount on a file: %v, want ErrNotDir", err)
	}
	if _, err := Mount(context.Background(), nil, filepath.Join(t.TempDir(), "missing"), DefaultOptions()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount on a missing directory: %v, want ENOENT", err)
	}
	if err := LazyUnmount(t.TempDir()); err == nil {
		t.Errorf("lazy unmount of a directory that is no mount point succeeded")
	}
	// The read-ahead window is only ever set on a FUSE mount: a directory
	// of the disk below must leave that disk's setting alone.
	if err := setReadAhead(t.TempDir(), 8<<10); err == nil || !strings.Contains(err.Error(), "not a FUSE mount") {
		t.Errorf("setReadAhead on a plain directory: %v, want a refusal", err)
	}
}

// TestMountReadAhead: the mount's own bdi gets the configured window.
func TestMountReadAhead(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("writing /sys/class/bdi needs root")
	}
	cl := startCluster(t, 2, 1<<20)
	m := mountTest(t, newClient(t, cl))
	var st syscall.Stat_t
	if err := syscall.Stat(m.dir, &st); err != nil {
		t.Fatal(err)
	}
	if unix.Major(st.Dev) != 0 {
		t.Fatalf("mount on device %d:%d, want an anonymous device", unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(DefaultOptions().ReadAheadKB) {
		t.Fatalf("read_ahead_kb %s, want %d", got, DefaultOptions().ReadAheadKB)
	}
}
