package fusefs

import (
	"context"
	"slices"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// offsetMax is the kernel's OFFSET_MAX: a lock "to end of file" ends here.
const offsetMax = 1<<63 - 1

// lockSpan is one lock held by one owner on bytes [start, end] (inclusive,
// as struct fuse_file_lock has them).
type lockSpan struct {
	owner      uint64
	pid        uint32
	typ        uint32 // syscall.F_RDLCK or syscall.F_WRLCK
	start, end uint64
}

func (a lockSpan) overlaps(b lockSpan) bool { return a.start <= b.end && b.start <= a.end }

// touches reports whether a and b overlap or are adjacent, so that two
// locks of one owner and type can be coalesced into one.
func (a lockSpan) touches(b lockSpan) bool {
	return a.overlaps(b) || (a.end != ^uint64(0) && a.end+1 == b.start) || (b.end != ^uint64(0) && b.end+1 == a.start)
}

// conflicts reports whether a lock held as l keeps want from being granted.
func (l lockSpan) conflicts(want lockSpan) bool {
	return l.owner != want.owner && l.overlaps(want) &&
		(l.typ == syscall.F_WRLCK || want.typ == syscall.F_WRLCK)
}

// fileLocks are the record locks on one inode.
type fileLocks struct {
	locks []lockSpan
	// changed is closed (and replaced) whenever the locks change, which
	// wakes every waiter to try again.
	changed chan struct{}
}

// lockTable holds the fcntl(2) record locks (process-owned and OFD) of one
// mount. It is exact within the mount and knows nothing about other
// mounts: reelfs does not (yet) coordinate locks through the metaserver.
type lockTable struct {
	mu    sync.Mutex // guards files and everything in it
	files map[uint64]*fileLocks
}

func newLockTable() *lockTable {
	return &lockTable{files: make(map[uint64]*fileLocks)}
}

// span turns a kernel lock request into a lockSpan, refusing nonsense.
func span(owner uint64, lk *fuse.FileLock) (lockSpan, error) {
	s := lockSpan{owner: owner, pid: lk.Pid, typ: lk.Typ, start: lk.Start, end: lk.End}
	switch s.typ {
	case syscall.F_RDLCK, syscall.F_WRLCK, syscall.F_UNLCK:
	default:
		return s, syscall.EINVAL
	}
	if s.start > s.end {
		return s, syscall.EINVAL
	}
	return s, nil
}

// get answers F_GETLK: the first lock that would keep lk from being
// granted to owner, or a lock of type F_UNLCK when there is none.
func (t *lockTable) get(ino, owner uint64, lk *fuse.FileLock) (fuse.FileLock, error) {
	want, err := span(owner, lk)
	if err != nil {
		return fuse.FileLock{}, err
	}
	if want.typ == syscall.F_UNLCK {
		return fuse.FileLock{}, syscall.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if fl := t.files[ino]; fl != nil {
		for _, l := range fl.locks {
			if l.conflicts(want) {
				return fuse.FileLock{Start: l.start, End: l.end, Typ: l.typ, Pid: l.pid}, nil
			}
		}
	}
	return fuse.FileLock{Typ: syscall.F_UNLCK}, nil
}

// set answers F_SETLK: it grants, changes or releases owner's lock on the
// range, or fails with EAGAIN when another owner holds a conflicting lock.
func (t *lockTable) set(ino, owner uint64, lk *fuse.FileLock) error {
	want, err := span(owner, lk)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err = t.trySetLocked(ino, want)
	return err
}

// wait answers F_SETLKW: like set, but waits while
// another owner holds a conflicting lock. A cancelled ctx (the process got
// a signal) ends the wait with EINTR. Deadlocks between owners are not
// detected; a signal or the other owner's unlock ends them.
func (t *lockTable) wait(ctx context.Context, ino, owner uint64, lk *fuse.FileLock) error {
	want, err := span(owner, lk)
	if err != nil {
		return err
	}
	for {
		t.mu.Lock()
		changed, err := t.trySetLocked(ino, want)
		t.mu.Unlock()
		if err != syscall.EAGAIN {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return syscall.EINTR
		}
	}
}

// trySetLocked applies want to the locks of ino. On a conflict it returns
// EAGAIN and the channel that is closed at the next change, so a waiter
// cannot miss the wake-up between unlocking t.mu and waiting.
func (t *lockTable) trySetLocked(ino uint64, want lockSpan) (<-chan struct{}, error) {
	fl := t.files[ino]
	if fl == nil {
		if want.typ == syscall.F_UNLCK {
			return nil, nil
		}
		fl = &fileLocks{changed: make(chan struct{})}
		t.files[ino] = fl
	}
	if want.typ != syscall.F_UNLCK {
		for _, l := range fl.locks {
			if l.conflicts(want) {
				return fl.changed, syscall.EAGAIN
			}
		}
	}
	fl.locks = apply(fl.locks, want)
	t.changedLocked(ino, fl)
	return nil, nil
}

// releaseOwner drops every lock owner holds on ino: a process closed a
// descriptor of the file (POSIX drops all its locks on the file then), or
// the last descriptor of an open file with OFD locks went away.
func (t *lockTable) releaseOwner(ino, owner uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fl := t.files[ino]
	if fl == nil {
		return
	}
	n := len(fl.locks)
	fl.locks = slices.DeleteFunc(fl.locks, func(l lockSpan) bool { return l.owner == owner })
	if len(fl.locks) != n {
		t.changedLocked(ino, fl)
	}
}

// changedLocked wakes the waiters of ino and forgets an inode without
// locks, so the table does not grow with every file ever locked.
func (t *lockTable) changedLocked(ino uint64, fl *fileLocks) {
	close(fl.changed)
	fl.changed = make(chan struct{})
	if len(fl.locks) == 0 {
		delete(t.files, ino)
	}
}

// apply returns list with want applied for want.owner: the owner's locks
// inside want's range are replaced (split where they stick out), a new
// lock is added unless want is F_UNLCK, and touching locks of the same
// owner and type are coalesced. Other owners' locks are untouched; the
// caller has checked that they do not conflict.
func apply(list []lockSpan, want lockSpan) []lockSpan {
	out := make([]lockSpan, 0, len(list)+2)
	for _, l := range list {
		if l.owner != want.owner || !l.overlaps(want) {
			out = append(out, l)
			continue
		}
		if l.start < want.start {
			head := l
			head.end = want.start - 1
			out = append(out, head)
		}
		if l.end > want.end {
			tail := l
			tail.start = want.end + 1
			out = append(out, tail)
		}
	}
	if want.typ != syscall.F_UNLCK {
		out = append(out, want)
	}
	return coalesce(out)
}

// coalesce sorts locks by owner and start and merges touching locks of the
// same owner and type.
func coalesce(list []lockSpan) []lockSpan {
	slices.SortFunc(list, func(a, b lockSpan) int {
		switch {
		case a.owner != b.owner:
			if a.owner < b.owner {
				return -1
			}
			return 1
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	out := list[:0]
	for _, l := range list {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.owner == l.owner && last.typ == l.typ && last.touches(l) {
				last.end = max(last.end, l.end)
				last.pid = l.pid
				continue
			}
		}
		out = append(out, l)
	}
	return out
}
