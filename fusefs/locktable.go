package fusefs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/lockrange"
	"github.com/reelfs/reelfs/internal/wire"
)

// lockTable is this mount's side of the cluster's locks: fcntl(2) record
// locks (process-owned and OFD) and flock(2) are granted by the
// metaserver, which holds them for every mount of the cluster (package
// metaserver, locks.go), so two mounts exclude each other exactly as two
// processes on one machine do. The table only remembers which (inode,
// owner) pairs ever took a lock here, so a close(2) of a file this mount
// never locked costs no metaserver call.
type lockTable struct {
	c   *client.Client
	log *slog.Logger

	mu   sync.Mutex
	held map[lockKey]struct{}

	closing   chan struct{} // closed when the mount goes away
	closeOnce sync.Once
}

// close ends every lock wait of this mount (with EINTR).
func (t *lockTable) close() { t.closeOnce.Do(func() { close(t.closing) }) }

type lockKey struct {
	ino, owner uint64
	flock      bool
}

// lockWaitMs is how long one F_SETLKW request waits on the metaserver
// before the mount asks again (below wire.AttemptTimeout).
const lockWaitMs = 2000

// releaseTimeout bounds the release of a closing owner's locks: a close
// cannot report a failure, and the session's expiry releases them anyway.
const releaseTimeout = 10 * time.Second

func newLockTable(c *client.Client, log *slog.Logger) *lockTable {
	return &lockTable{c: c, log: log, held: make(map[lockKey]struct{}), closing: make(chan struct{})}
}

// request turns a kernel lock request into a wire request, refusing
// nonsense with EINVAL.
func request(ino, owner uint64, flock bool, lk *fuse.FileLock, cmd string) (wire.LockReq, error) {
	req := wire.LockReq{Ino: ino, Owner: owner, Flock: flock, Cmd: cmd, Typ: lk.Typ, Start: lk.Start, End: lk.End, Pid: lk.Pid}
	switch lk.Typ {
	case lockrange.Read, lockrange.Write, lockrange.Unlock:
	default:
		return req, syscall.EINVAL
	}
	if lk.Start > lk.End {
		return req, syscall.EINVAL
	}
	if flock {
		req.Start, req.End = 0, lockrange.MaxOffset
	}
	return req, nil
}

// get answers F_GETLK: the first lock that would keep lk from being
// granted to owner, or a lock of type F_UNLCK when there is none.
func (t *lockTable) get(ctx context.Context, ino, owner uint64, lk *fuse.FileLock) (fuse.FileLock, error) {
	req, err := request(ino, owner, false, lk, "get")
	if err != nil {
		return fuse.FileLock{}, err
	}
	if req.Typ == lockrange.Unlock {
		return fuse.FileLock{}, syscall.EINVAL
	}
	r, err := t.c.Lock(ctx, req)
	if err != nil {
		return fuse.FileLock{}, err
	}
	if r.Typ == lockrange.Unlock {
		return fuse.FileLock{Typ: syscall.F_UNLCK}, nil
	}
	return fuse.FileLock{Start: r.Start, End: r.End, Typ: r.Typ, Pid: r.Pid}, nil
}

// set answers F_SETLK (and LOCK_NB flock): it grants, changes or releases
// owner's lock on the range, or fails with EAGAIN when another owner (of
// any mount) holds a conflicting lock.
func (t *lockTable) set(ctx context.Context, ino, owner uint64, flock bool, lk *fuse.FileLock) error {
	req, err := request(ino, owner, flock, lk, "set")
	if err != nil {
		return err
	}
	return t.send(ctx, req)
}

// wait answers F_SETLKW (and blocking flock): like set, but waits while
// another owner holds a conflicting lock, by long polls of the
// metaserver. A cancelled ctx (the process got a signal) ends the wait
// with EINTR. Deadlocks between owners are not detected; a signal or the
// other owner's unlock ends them.
func (t *lockTable) wait(ctx context.Context, ino, owner uint64, flock bool, lk *fuse.FileLock) error {
	req, err := request(ino, owner, flock, lk, "set")
	if err != nil {
		return err
	}
	req.WaitMs = lockWaitMs
	for {
		err := t.send(ctx, req)
		if err != syscall.EAGAIN {
			return err
		}
		if ctx.Err() != nil {
			return syscall.EINTR
		}
		select {
		case <-t.closing:
			return syscall.EINTR
		default:
		}
	}
}

func (t *lockTable) send(ctx context.Context, req wire.LockReq) error {
	if req.Typ != lockrange.Unlock {
		t.note(req.Ino, req.Owner, req.Flock)
	}
	r, err := t.c.Lock(ctx, req)
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return syscall.EINTR
	case err != nil:
		return err
	case !r.Granted:
		return syscall.EAGAIN
	}
	return nil
}

func (t *lockTable) note(ino, owner uint64, flock bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.held[lockKey{ino, owner, flock}] = struct{}{}
}

// releaseOwner drops every lock owner holds on ino: a process closed a
// descriptor of the file (POSIX drops all its locks on the file then), or
// the last descriptor of an open file with OFD or flock locks went away.
// It asks the metaserver only when the owner took a lock here.
func (t *lockTable) releaseOwner(ino, owner uint64, flock bool) {
	k := lockKey{ino, owner, flock}
	t.mu.Lock()
	_, ok := t.held[k]
	delete(t.held, k)
	t.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, err := t.c.Lock(ctx, wire.LockReq{Ino: ino, Owner: owner, Flock: flock, Cmd: "release"})
	if err != nil && !errors.Is(err, wire.ErrNotFound) {
		t.log.Warn("releasing locks failed; they go when this mount's session expires", "ino", ino, "err", err)
	}
}
