package fusefs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLocksAcrossMounts: two mounts of one cluster (two clients, two
// sessions, as on two machines) exclude each other with flock(2), OFD
// and POSIX record locks; blocking waits on one mount wake when the
// holder on the other releases; F_GETLK on one sees the other's lock.
func TestLocksAcrossMounts(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 2, 1<<20)
	a := mountTest(t, newClient(t, cl))
	b := mountTest(t, newClient(t, cl))
	if err := os.WriteFile(filepath.Join(a.dir, "db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(m *mounted) *os.File {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(m.dir, "db"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fa, fb := open(a), open(b)

	// flock: exclusive on A keeps B out, shared or not; a blocking flock
	// on B is granted when A unlocks.
	if err := unix.Flock(int(fa.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(fb.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("flock LOCK_SH on mount B under A's LOCK_EX: %v, want EWOULDBLOCK", err)
	}
	got := make(chan error, 1)
	go func() { got <- unix.Flock(int(fb.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-got:
		t.Fatalf("blocking flock on B returned while A holds it: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := unix.Flock(int(fa.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("blocking flock on B: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking flock on B not woken by A's unlock")
	}
	if err := unix.Flock(int(fa.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Fatalf("flock on A while B holds it: %v", err)
	}
	if err := unix.Flock(int(fb.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}

	// Record locks (classic POSIX, process-owned): this test process is
	// one owner per mount, as two processes on two machines would be.
	lock := func(f *os.File, cmd int, typ int16, start, length int64) error {
		lk := unix.Flock_t{Type: typ, Whence: 0, Start: start, Len: length}
		return unix.FcntlFlock(f.Fd(), cmd, &lk)
	}
	if err := lock(fa, unix.F_SETLK, unix.F_WRLCK, 0, 100); err != nil {
		t.Fatal(err)
	}
	if err := lock(fb, unix.F_SETLK, unix.F_RDLCK, 50, 10); err != unix.EAGAIN && err != unix.EACCES {
		t.Fatalf("F_SETLK on B inside A's write lock: %v, want EAGAIN", err)
	}
	if err := lock(fb, unix.F_SETLK, unix.F_WRLCK, 100, 10); err != nil {
		t.Fatalf("F_SETLK on B next to A's lock: %v", err)
	}
	q := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 10}
	if err := unix.FcntlFlock(fb.Fd(), unix.F_GETLK, &q); err != nil {
		t.Fatal(err)
	}
	if q.Type != unix.F_WRLCK || q.Start != 0 || q.Len != 100 {
		t.Fatalf("F_GETLK on B: %+v, want A's write lock on [0,100)", q)
	}
	// F_SETLKW on B waits; closing A's descriptor (POSIX: drops all of the
	// process's locks on the file) wakes it.
	go func() { got <- lock(fb, unix.F_SETLKW, unix.F_WRLCK, 0, 10) }()
	select {
	case err := <-got:
		t.Fatalf("F_SETLKW on B returned while A holds the range: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("F_SETLKW on B: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("F_SETLKW on B not woken when A closed its descriptor")
	}
	// OFD locks: per open file, across mounts too.
	fa2 := open(a)
	if err := lock(fa2, unix.F_OFD_SETLK, unix.F_WRLCK, 0, 10); err != unix.EAGAIN {
		t.Fatalf("OFD lock on A over B's record lock: %v, want EAGAIN", err)
	}
	if err := lock(fa2, unix.F_OFD_SETLK, unix.F_WRLCK, 500, 10); err != nil {
		t.Fatal(err)
	}
	if err := lock(fb, unix.F_OFD_SETLK, unix.F_RDLCK, 505, 1); err != unix.EAGAIN {
		t.Fatalf("OFD lock on B over A's OFD lock: %v, want EAGAIN", err)
	}
}
