package tests

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tmpfsDir mounts a tmpfs of size bytes at dir for the test: a disk that
// fills up exactly when the test wants it to. It is unmounted after the
// test's processes stopped (cleanups run last-in first-out).
func tmpfsDir(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func statfsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// TestFullClusterFailsAtWrite: chunkservers on 192 MiB disks with a 32 MiB
// reserve. dd into the mount fails at a write with ENOSPC (not at close),
// as does a shell's echo; once the failed file is removed df recovers
// within seconds, new writes work again, and the file written before the
// cluster filled is intact.
func TestFullClusterFailsAtWrite(t *testing.T) {
	needFUSE(t)
	dir := t.TempDir()
	for _, c := range []string{"c1", "c2"} {
		tmpfsDir(t, filepath.Join(dir, c), 192<<20)
	}
	meta := freeAddr(t)
	mp := startProc(t, "meta", "--dir", filepath.Join(dir, "meta"), "--listen", meta, "--session-ttl", "10s")
	t.Cleanup(func() { mp.stop(t, 30*time.Second) })
	g := &group{t: t, dir: dir, meta: meta}
	g.startMembers(2, "--reserve", fmt.Sprint(32<<20))
	g.waitInSync(2, 60*time.Second)
	a := startMount(t, &cluster{t: t, meta: meta}, filepath.Join(dir, "a"))

	before := filepath.Join(a.dir, "before.bin")
	wantBefore := writeRandomFile(t, before, 24<<20, 7)
	// df follows the chunkservers' heartbeats (every 2 s): wait until it
	// holds still, so free0 counts the file just written.
	free0 := statfsFree(t, a.dir)
	for i := 0; i < 10; i++ {
		time.Sleep(2500 * time.Millisecond)
		now := statfsFree(t, a.dir)
		if now == free0 {
			break
		}
		free0 = now
	}

	big := filepath.Join(a.dir, "big.bin")
	start := time.Now()
	out, err := exec.Command("dd", "if=/dev/urandom", "of="+big, "bs=1M", "count=400").CombinedOutput()
	t.Logf("dd into the full cluster, %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	if err == nil {
		t.Fatal("dd of 400 MiB into ~136 MiB of room succeeded")
	}
	if !strings.Contains(string(out), "error writing") || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("dd did not fail at a write with ENOSPC:\n%s", out)
	}
	echo := exec.Command("bash", "-c", "echo hello > "+filepath.Join(a.dir, "hello.txt"))
	if out, err := echo.CombinedOutput(); err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Fatalf("echo into the full cluster: %v\n%s", err, out)
	}

	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	deadline := removed.Add(60 * time.Second)
	for statfsFree(t, a.dir) < free0-(8<<20) {
		if time.Now().After(deadline) {
			status, _, _ := (&cluster{t: t, meta: meta}).cli("status")
			du, _ := exec.Command("du", "-s", "--block-size=1M", filepath.Join(dir, "c1"), filepath.Join(dir, "c2")).CombinedOutput()
			t.Fatalf("df did not recover within 60 s of the failed file's removal: %d MiB free, %d before dd\n%s\n%s\nmeta log:\n%s\nmount log:\n%s",
				statfsFree(t, a.dir)>>20, free0>>20, status, du, tail(mp.log.String(), 3000), tail(a.log.String(), 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("df: %d MiB free before dd, back to %d MiB %v after rm", free0>>20, statfsFree(t, a.dir)>>20,
		time.Since(removed).Round(100*time.Millisecond))

	after := filepath.Join(a.dir, "after.bin")
	eventually(t, 30*time.Second, "writes work again", func() bool {
		f, err := os.Create(after)
		if err != nil {
			return false
		}
		buf := make([]byte, 1<<20)
		for range 8 {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return false
			}
		}
		return f.Close() == nil
	})
	if got := sha256File(t, before); got != wantBefore {
		t.Fatal("the file written before the cluster filled changed")
	}
	if st, err := os.Stat(after); err != nil || st.Size() != 8<<20 {
		t.Fatalf("file written after recovery: %v, %v", st, err)
	}
}

// patternAt fills p with the bytes of a deterministic stream at off
// (splitmix64 of each 8-byte word's index), so any range can be checked
// alone.
func patternAt(p []byte, off int64) {
	for i := range p {
		pos := uint64(off) + uint64(i)
		x := pos/8 + 0x9e3779b97f4a7c15
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
		x = (x ^ (x >> 27)) * 0x94d049bb133111eb
		x ^= x >> 31
		p[i] = byte(x >> (8 * (pos % 8)))
	}
}

// TestKilledMountLosesOnlyTheCommitWindow: a separate `reelfs mount` is
// killed -9 during a long write that was never closed or fsynced. What
// the writer was acknowledged more than the documented window before the
// kill (the commit interval, 1 s, plus the upload: 2 s here) reads back
// through another mount, byte for byte, and nothing past it is garbage.
func TestKilledMountLosesOnlyTheCommitWindow(t *testing.T) {
	_, a, b := twoMounts(t)
	const piece = 256 << 10
	f, err := os.Create(filepath.Join(a.dir, "long.bin"))
	if err != nil {
		t.Fatal(err)
	}
	type ack struct {
		at  time.Time
		end int64
	}
	var (
		mu   sync.Mutex
		acks []ack
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, piece)
		var off int64
		for off < 1<<30 { // bounded; at a few MiB/s the kill comes long before
			patternAt(buf, off)
			if _, err := f.Write(buf); err != nil {
				return // the mount died
			}
			off += piece
			mu.Lock()
			acks = append(acks, ack{time.Now(), off})
			mu.Unlock()
			time.Sleep(30 * time.Millisecond)
		}
	}()
	time.Sleep(6 * time.Second)
	a.kill()
	killed := time.Now()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the writer did not notice its mount died")
	}
	f.Close()
	exec.Command("fusermount3", "-u", "-z", a.dir).Run()

	const window = 2 * time.Second
	var promised, acked int64
	mu.Lock()
	for _, x := range acks {
		if x.at.Before(killed.Add(-window)) {
			promised = x.end
		}
		acked = x.end
	}
	mu.Unlock()
	pb := filepath.Join(b.dir, "long.bin")
	var size int64
	eventually(t, 10*time.Second, "mount B sees what was committed", func() bool {
		st, err := os.Stat(pb)
		if err == nil {
			size = st.Size()
		}
		return err == nil && size >= promised
	})
	r, err := os.Open(pb)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, want := make([]byte, piece), make([]byte, piece)
	for off := int64(0); off < size; off += piece {
		n, err := r.ReadAt(got, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		patternAt(want[:n], off)
		if sha256.Sum256(got[:n]) != sha256.Sum256(want[:n]) {
			t.Fatalf("bytes at %d differ from what was written", off)
		}
	}
	t.Logf("mount killed -9 after %.1f MiB acknowledged: %.1f MiB committed, %.1f MiB lost; promised (acknowledged %v before the kill): %.1f MiB",
		float64(acked)/(1<<20), float64(size)/(1<<20), float64(acked-size)/(1<<20), window, float64(promised)/(1<<20))
	if size < promised {
		t.Fatalf("only %d bytes survived, %d were acknowledged more than %v before the kill", size, promised, window)
	}
}

// TestDuCountsStoredBytes: st_blocks on the mount is the bytes a file's
// blocks store, so du of a sparse file shows what it takes, while
// du --apparent-size still shows its size.
func TestDuCountsStoredBytes(t *testing.T) {
	needFUSE(t)
	c := startCluster(t, clusterOpts{mount: true})
	m := c.mount
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("truncate", "-s", "1G", filepath.Join(m, "empty-1g"))
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "mid"), "bs=1M", "count=1", "seek=512", "status=none")
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "dense"), "bs=1M", "count=3", "status=none")
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "over"), "bs=1M", "count=2", "status=none")
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "over"), "bs=1M", "count=1", "conv=notrunc", "status=none")
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "hole-mid"), "bs=1M", "count=1", "status=none")
	run("dd", "if=/dev/urandom", "of="+filepath.Join(m, "hole-mid"), "bs=1M", "count=1", "seek=9", "conv=notrunc", "status=none")
	for _, tc := range []struct {
		name         string
		size, stored int64
	}{
		{"empty-1g", 1 << 30, 0},
		{"mid", 513 << 20, 1 << 20},
		{"dense", 3 << 20, 3 << 20},
		{"over", 2 << 20, 2 << 20},
		{"hole-mid", 10 << 20, 2 << 20},
	} {
		p := filepath.Join(m, tc.name)
		var used, apparent int64
		eventually(t, 10*time.Second, tc.name+" attributes current", func() bool {
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			used, apparent = st.Blocks*512, st.Size
			return apparent == tc.size && used == tc.stored
		})
		out, err := exec.Command("du", "--block-size=1", p).Output()
		if err != nil || !strings.HasPrefix(string(out), fmt.Sprint(tc.stored)+"\t") {
			t.Fatalf("du %s: %q (%v), want %d bytes", tc.name, out, err, tc.stored)
		}
		out, err = exec.Command("du", "--apparent-size", "--block-size=1", p).Output()
		if err != nil || !strings.HasPrefix(string(out), fmt.Sprint(tc.size)+"\t") {
			t.Fatalf("du --apparent-size %s: %q (%v), want %d", tc.name, out, err, tc.size)
		}
		t.Logf("%s: size %d, du %d", tc.name, apparent, used)
	}
}
