package metaserver

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/reelfs/reelfs/internal/lockrange"
	"github.com/reelfs/reelfs/internal/wire"
)

// Locks across mounts. Each inode's locks are one record in the database,
// changed by a logged txn like any other change, so they are replicated
// with the op log and survive a failover. A lock belongs to an owner of a
// session; the session's expiry (its mount died) releases them. Waiters
// (F_SETLKW) wait on the leader for a change of the inode's locks, up to
// the request's WaitMs, and the client asks again: a long poll, not a
// polling loop.

// maxLockWait bounds one wait; the client's call to an unanswering
// metaserver gives up after wire.AttemptTimeout.
const maxLockWait = 2 * time.Second

func keyLocks(ino uint64) []byte { return key64(pLocks, ino) }

// lockOwner is the owner key of a request: session, kind and owner.
func lockOwner(session string, flock bool, owner uint64) string {
	kind := "p"
	if flock {
		kind = "f"
	}
	return session + "/" + kind + strconv.FormatUint(owner, 16)
}

// ownerSession is the session part of an owner key.
func ownerSession(owner string) string {
	s, _, _ := strings.Cut(owner, "/")
	return s
}

// ownerFlock reports whether an owner key is of a flock lock.
func ownerFlock(owner string) bool {
	_, k, _ := strings.Cut(owner, "/")
	return strings.HasPrefix(k, "f")
}

func loadLocks(r reader, ino uint64) ([]lockrange.Span, error) {
	v, ok, err := getOpt(r, keyLocks(ino))
	if err != nil || !ok {
		return nil, err
	}
	var list []lockrange.Span
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%w: locks of inode %d: %v", ErrCorrupt, ino, err)
	}
	return list, nil
}

// putLocks writes ino's locks in t (deleting the record when none).
func (t *txn) putLocks(ino uint64, list []lockrange.Span) error {
	if len(list) == 0 {
		t.b.Delete(keyLocks(ino))
		return nil
	}
	v, err := json.Marshal(list)
	if err != nil {
		return err
	}
	t.b.Put(keyLocks(ino), v)
	return nil
}

// lockChanged wakes the waiters on ino's locks; c.mu held.
func (c *core) lockChanged(ino uint64) {
	if s := c.lockWaits[ino]; s != nil {
		s.fire()
		delete(c.lockWaits, ino)
	}
}

// lockWait is the channel closed at the next change of ino's locks; c.mu
// held.
func (c *core) lockWait(ino uint64) <-chan struct{} {
	s := c.lockWaits[ino]
	if s == nil {
		s = newSignal()
		c.lockWaits[ino] = s
	}
	return s.wait()
}

// lock serves OpLock.
func (c *core) lock(ctx context.Context, req *wire.LockReq) (wire.LockReply, error) {
	if err := checkSession(req.Session, true); err != nil {
		return wire.LockReply{}, err
	}
	want := lockrange.Span{Owner: lockOwner(req.Session, req.Flock, req.Owner), Pid: req.Pid, Typ: req.Typ, Start: req.Start, End: req.End}
	switch {
	case req.Cmd != "get" && req.Cmd != "set" && req.Cmd != "release":
		return wire.LockReply{}, errInval("lock command %q (want get, set or release)", req.Cmd)
	case req.Cmd != "release" && !want.Valid():
		return wire.LockReply{}, errInval("lock type %d over [%d, %d]", req.Typ, req.Start, req.End)
	case req.Cmd == "get" && req.Typ == lockrange.Unlock:
		return wire.LockReply{}, errInval("F_GETLK with F_UNLCK")
	case req.WaitMs < 0:
		return wire.LockReply{}, errInval("lock wait %d ms", req.WaitMs)
	}
	wait := min(time.Duration(req.WaitMs)*time.Millisecond, maxLockWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		reply, ch, err := c.lockOnce(ctx, req, want, wait > 0)
		if err != nil || ch == nil {
			return reply, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			// One last look, so the answer names the current conflict.
			reply, _, err := c.lockOnce(ctx, req, want, false)
			return reply, err
		case <-ctx.Done():
			return wire.LockReply{}, wire.Errorf(wire.ErrUnavailable, "metaserver stopping during a lock wait")
		}
	}
}

// lockOnce tries req once. On a conflict of a set that may wait, it
// returns the channel to wait on.
func (c *core) lockOnce(ctx context.Context, req *wire.LockReq, want lockrange.Span, mayWait bool) (wire.LockReply, <-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := loadInode(c.db, req.Ino); err != nil {
		return wire.LockReply{}, nil, err
	}
	c.sessionFor(req.Session) // a lock op is a sign of life
	list, err := loadLocks(c.db, req.Ino)
	if err != nil {
		return wire.LockReply{}, nil, err
	}
	// flock and POSIX locks live side by side and never conflict.
	same := func(l lockrange.Span) bool { return ownerFlock(l.Owner) == req.Flock }
	var kind []lockrange.Span
	for _, l := range list {
		if same(l) {
			kind = append(kind, l)
		}
	}
	conflict := func() (lockrange.Span, bool) {
		if l, ok := lockrange.Conflict(kind, want); ok {
			return l, true
		}
		return lockrange.Span{}, false
	}
	var next []lockrange.Span
	switch req.Cmd {
	case "get":
		if l, ok := conflict(); ok {
			return wire.LockReply{Typ: l.Typ, Start: l.Start, End: l.End, Pid: l.Pid}, nil, nil
		}
		return wire.LockReply{Typ: lockrange.Unlock}, nil, nil
	case "release":
		var changed bool
		if next, changed = lockrange.Release(list, want.Owner); !changed {
			return wire.LockReply{Granted: true, Typ: lockrange.Unlock}, nil, nil
		}
	case "set":
		if l, ok := conflict(); ok {
			reply := wire.LockReply{Typ: l.Typ, Start: l.Start, End: l.End, Pid: l.Pid}
			if mayWait {
				return reply, c.lockWait(req.Ino), nil
			}
			return reply, nil, nil
		}
		next = lockrange.Apply(kind, want)
		for _, l := range list {
			if !same(l) {
				next = append(next, l)
			}
		}
	}
	t := c.begin(wire.OpLock)
	t.tag(ctx)
	if err := t.putLocks(req.Ino, next); err != nil {
		return wire.LockReply{}, nil, err
	}
	if err := t.commit(); err != nil {
		return wire.LockReply{}, nil, err
	}
	c.lockChanged(req.Ino)
	return wire.LockReply{Granted: true, Typ: lockrange.Unlock}, nil, nil
}

// reapLocks drops the locks of sessions that are not alive: expired ones,
// and, once a session TTL has passed since this process started leading,
// those it never heard from (their mounts died during a failover). c.mu
// held.
func (c *core) reapLocks(now time.Time) error {
	if now.Sub(c.started) <= c.ttl {
		return nil
	}
	it := c.db.NewIterator(util.BytesPrefix([]byte{pLocks}), nil)
	type change struct {
		ino  uint64
		list []lockrange.Span
	}
	var changes []change
	for it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		var list []lockrange.Span
		if err := json.Unmarshal(it.Value(), &list); err != nil {
			it.Release()
			return fmt.Errorf("%w: locks record %x: %v", ErrCorrupt, k, err)
		}
		next, changed := lockrange.ReleaseIf(list, func(owner string) bool {
			s := c.sessions[ownerSession(owner)]
			return s == nil || now.Sub(s.seen) > c.ttl
		})
		if changed {
			changes = append(changes, change{ino: binary.BigEndian.Uint64(k[1:]), list: next})
		}
	}
	it.Release()
	if err := it.Error(); err != nil || len(changes) == 0 {
		return err
	}
	t := c.begin("lockreap")
	for _, ch := range changes {
		if err := t.putLocks(ch.ino, ch.list); err != nil {
			return err
		}
	}
	if err := t.commit(); err != nil {
		return err
	}
	for _, ch := range changes {
		c.lockChanged(ch.ino)
	}
	c.log.Info("released the locks of dead sessions", "inodes", len(changes))
	return nil
}
