package fusefs

import (
	"context"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func lk(typ uint32, start, end uint64) *fuse.FileLock {
	return &fuse.FileLock{Typ: typ, Start: start, End: end, Pid: 100}
}

// spans lists the locks of ino as owner:type:[start,end] for comparisons.
func spans(t *lockTable, ino uint64) []lockSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	fl := t.files[ino]
	if fl == nil {
		return nil
	}
	out := slices.Clone(fl.locks)
	for i := range out {
		out[i].pid = 0
	}
	return out
}

func mustSet(t *testing.T, tab *lockTable, owner uint64, l *fuse.FileLock) {
	t.Helper()
	if err := tab.set(1, owner, l); err != nil {
		t.Fatalf("set(owner %d, %+v) = %v", owner, *l, err)
	}
}

func TestLockConflicts(t *testing.T) {
	tab := newLockTable()
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 0, 99))
	if err := tab.set(1, 2, lk(syscall.F_RDLCK, 50, 60)); err != syscall.EAGAIN {
		t.Errorf("read lock inside another owner's write lock: %v, want EAGAIN", err)
	}
	mustSet(t, tab, 2, lk(syscall.F_RDLCK, 100, 199))
	got, err := tab.get(1, 2, lk(syscall.F_WRLCK, 90, 120))
	if err != nil {
		t.Fatal(err)
	}
	if got.Typ != syscall.F_WRLCK || got.Start != 0 || got.End != 99 || got.Pid != 100 {
		t.Errorf("F_GETLK = %+v, want owner 1's write lock [0,99]", got)
	}
	// An owner never conflicts with itself.
	if got, _ := tab.get(1, 1, lk(syscall.F_WRLCK, 0, offsetMax)); got.Typ != syscall.F_RDLCK || got.Start != 100 {
		t.Errorf("F_GETLK for owner 1 over the whole file = %+v, want owner 2's read lock at 100", got)
	}
	if got, _ := tab.get(1, 3, lk(syscall.F_RDLCK, 150, 160)); got.Typ != syscall.F_UNLCK {
		t.Errorf("read over a read lock conflicts: %+v", got)
	}
	if got, _ := tab.get(1, 3, lk(syscall.F_RDLCK, 200, offsetMax)); got.Typ != syscall.F_UNLCK {
		t.Errorf("F_GETLK past every lock = %+v, want F_UNLCK", got)
	}
	// Readers share; a writer waits for all of them.
	mustSet(t, tab, 3, lk(syscall.F_RDLCK, 150, 250))
	if err := tab.set(1, 4, lk(syscall.F_WRLCK, 200, 200)); err != syscall.EAGAIN {
		t.Errorf("write lock over a read lock: %v, want EAGAIN", err)
	}
}

func TestLockReplaceSplitCoalesce(t *testing.T) {
	tab := newLockTable()
	mustSet(t, tab, 1, lk(syscall.F_RDLCK, 0, 99))
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 50, 149))
	want := []lockSpan{
		{owner: 1, typ: syscall.F_RDLCK, start: 0, end: 49},
		{owner: 1, typ: syscall.F_WRLCK, start: 50, end: 149},
	}
	if got := spans(tab, 1); !slices.Equal(got, want) {
		t.Fatalf("after upgrading the middle: %+v, want %+v", got, want)
	}
	// Unlocking the middle splits the write lock in two.
	mustSet(t, tab, 1, lk(syscall.F_UNLCK, 80, 89))
	want = []lockSpan{
		{owner: 1, typ: syscall.F_RDLCK, start: 0, end: 49},
		{owner: 1, typ: syscall.F_WRLCK, start: 50, end: 79},
		{owner: 1, typ: syscall.F_WRLCK, start: 90, end: 149},
	}
	if got := spans(tab, 1); !slices.Equal(got, want) {
		t.Fatalf("after unlocking [80,89]: %+v, want %+v", got, want)
	}
	// The hole is free for others, its edges are not.
	mustSet(t, tab, 2, lk(syscall.F_WRLCK, 80, 89))
	if err := tab.set(1, 2, lk(syscall.F_WRLCK, 79, 79)); err != syscall.EAGAIN {
		t.Errorf("lock on the edge of a split lock: %v, want EAGAIN", err)
	}
	mustSet(t, tab, 2, lk(syscall.F_UNLCK, 0, offsetMax))
	// Filling the hole again coalesces into one lock.
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 80, 89))
	want = []lockSpan{
		{owner: 1, typ: syscall.F_RDLCK, start: 0, end: 49},
		{owner: 1, typ: syscall.F_WRLCK, start: 50, end: 149},
	}
	if got := spans(tab, 1); !slices.Equal(got, want) {
		t.Fatalf("after refilling: %+v, want %+v", got, want)
	}
	// Unlocking everything forgets the inode.
	mustSet(t, tab, 1, lk(syscall.F_UNLCK, 0, offsetMax))
	if len(tab.files) != 0 {
		t.Errorf("table keeps %d inodes without locks", len(tab.files))
	}
	// Unlocking where nothing is locked is fine and leaves no entry.
	mustSet(t, tab, 5, lk(syscall.F_UNLCK, 0, 10))
	if len(tab.files) != 0 {
		t.Errorf("unlock of nothing created an entry")
	}
}

func TestLockInodesAndOwnerRelease(t *testing.T) {
	tab := newLockTable()
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 0, 9))
	mustSet(t, tab, 1, lk(syscall.F_RDLCK, 20, offsetMax))
	mustSet(t, tab, 2, lk(syscall.F_RDLCK, 30, 40))
	// Other inodes are independent.
	if err := tab.set(2, 3, lk(syscall.F_WRLCK, 0, offsetMax)); err != nil {
		t.Errorf("lock on another inode: %v", err)
	}
	// Releasing an owner drops all its locks on that inode only.
	tab.releaseOwner(1, 1)
	want := []lockSpan{{owner: 2, typ: syscall.F_RDLCK, start: 30, end: 40}}
	if got := spans(tab, 1); !slices.Equal(got, want) {
		t.Errorf("after releasing owner 1: %+v, want %+v", got, want)
	}
	if got := spans(tab, 2); len(got) != 1 || got[0].owner != 3 {
		t.Errorf("inode 2 after releasing owner 1 of inode 1: %+v", got)
	}
	tab.releaseOwner(1, 2)
	tab.releaseOwner(7, 2) // nothing there
	if _, ok := tab.files[1]; ok {
		t.Errorf("inode 1 kept without locks")
	}
}

func TestLockBadRequests(t *testing.T) {
	tab := newLockTable()
	if err := tab.set(1, 1, lk(7, 0, 1)); err != syscall.EINVAL {
		t.Errorf("unknown lock type: %v, want EINVAL", err)
	}
	if err := tab.set(1, 1, lk(syscall.F_WRLCK, 10, 5)); err != syscall.EINVAL {
		t.Errorf("start after end: %v, want EINVAL", err)
	}
	if _, err := tab.get(1, 1, lk(syscall.F_UNLCK, 0, 5)); err != syscall.EINVAL {
		t.Errorf("F_GETLK of F_UNLCK: %v, want EINVAL", err)
	}
	if err := tab.wait(context.Background(), 1, 1, lk(syscall.F_WRLCK, 10, 5)); err != syscall.EINVAL {
		t.Errorf("wait with start after end: %v, want EINVAL", err)
	}
}

func TestLockWait(t *testing.T) {
	tab := newLockTable()
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 0, 99))

	// A waiter gets the lock once the holder unlocks.
	got := make(chan error, 1)
	go func() { got <- tab.wait(context.Background(), 1, 2, lk(syscall.F_WRLCK, 50, 50)) }()
	// An unrelated change wakes the waiter, which must wait on.
	mustSet(t, tab, 1, lk(syscall.F_WRLCK, 200, 300))
	mustSet(t, tab, 1, lk(syscall.F_UNLCK, 0, 99))
	if err := <-got; err != nil {
		t.Fatalf("wait = %v", err)
	}
	if err := tab.set(1, 1, lk(syscall.F_RDLCK, 50, 50)); err != syscall.EAGAIN {
		t.Errorf("the waiter does not hold the lock: %v", err)
	}

	// A signal (cancelled ctx) ends the wait with EINTR and no lock.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- tab.wait(ctx, 1, 3, lk(syscall.F_RDLCK, 0, offsetMax)) }()
	cancel()
	if err := <-got; err != syscall.EINTR {
		t.Fatalf("cancelled wait = %v, want EINTR", err)
	}
	for _, s := range spans(tab, 1) {
		if s.owner == 3 {
			t.Errorf("cancelled waiter holds %+v", s)
		}
	}
}

// TestLockModel drives the table with random operations and checks it
// byte by byte against a plain model: cells 0..n-1 are bytes, cell n
// stands for every byte from n to OFFSET_MAX.
func TestLockModel(t *testing.T) {
	const n, owners = 48, 3
	rng := rand.New(rand.NewPCG(1, 2))
	tab := newLockTable()
	var model [owners + 1][n + 1]uint32
	for o := range model {
		for b := range model[o] {
			model[o][b] = syscall.F_UNLCK
		}
	}
	cells := func(s, e uint64) (int, int) { return int(s), int(min(e, n)) }
	iters := 4000
	if testing.Short() {
		iters = 500
	}
	for i := 0; i < iters; i++ {
		owner := uint64(1 + rng.IntN(owners))
		s := uint64(rng.IntN(n))
		e := s + uint64(rng.IntN(n-int(s)))
		if rng.IntN(5) == 0 {
			e = offsetMax
		}
		typ := []uint32{syscall.F_RDLCK, syscall.F_WRLCK, syscall.F_UNLCK}[rng.IntN(3)]
		a, b := cells(s, e)

		conflict := false
		if typ != syscall.F_UNLCK {
			for o := 1; o <= owners; o++ {
				for c := a; c <= b && o != int(owner); c++ {
					if model[o][c] == syscall.F_WRLCK || (typ == syscall.F_WRLCK && model[o][c] == syscall.F_RDLCK) {
						conflict = true
					}
				}
			}
			got, err := tab.get(1, owner, lk(typ, s, e))
			if err != nil {
				t.Fatal(err)
			}
			if (got.Typ != syscall.F_UNLCK) != conflict {
				t.Fatalf("op %d: F_GETLK(owner %d, type %d, [%d,%d]) = %+v, model conflict %v", i, owner, typ, s, e, got, conflict)
			}
			if conflict && (got.Start > e || got.End < s) {
				t.Fatalf("op %d: F_GETLK reported %+v, which does not overlap [%d,%d]", i, got, s, e)
			}
		}
		err := tab.set(1, owner, lk(typ, s, e))
		if conflict != (err == syscall.EAGAIN) || (err != nil && err != syscall.EAGAIN) {
			t.Fatalf("op %d: set(owner %d, type %d, [%d,%d]) = %v, model conflict %v", i, owner, typ, s, e, err, conflict)
		}
		if !conflict {
			for c := a; c <= b; c++ {
				model[owner][c] = typ
			}
		}

		var got [owners + 1][n + 1]uint32
		for o := range got {
			for c := range got[o] {
				got[o][c] = syscall.F_UNLCK
			}
		}
		list := spans(tab, 1)
		for j, sp := range list {
			if j > 0 {
				prev := list[j-1]
				if prev.owner == sp.owner && (prev.overlaps(sp) || (prev.typ == sp.typ && prev.touches(sp))) {
					t.Fatalf("op %d: owner %d holds overlapping or uncoalesced %+v and %+v", i, sp.owner, prev, sp)
				}
			}
			sa, sb := cells(sp.start, sp.end)
			for c := sa; c <= sb; c++ {
				got[sp.owner][c] = sp.typ
			}
		}
		if got != model {
			t.Fatalf("op %d: table %+v differs from the model", i, list)
		}
	}
}
