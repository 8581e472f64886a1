package metaserver

import (
	"context"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/lockrange"
	"github.com/reelfs/reelfs/internal/wire"
)

func lockReq(ino uint64, session string, owner uint64, cmd string, typ uint32, start, end uint64) *wire.LockReq {
	return &wire.LockReq{Ino: ino, Session: session, Owner: owner, Cmd: cmd, Typ: typ, Start: start, End: end, Pid: 7}
}

// TestLocks: two sessions (two mounts) exclude each other; flock and
// POSIX locks are separate; a release frees; bad requests are EINVAL.
func TestLocks(t *testing.T) {
	c, _ := newTestCore(t)
	ctx := context.Background()
	f := mkfile(t, c, wire.RootIno, "db")
	do := func(r *wire.LockReq) wire.LockReply {
		t.Helper()
		rep, err := c.lock(ctx, r)
		if err != nil {
			t.Fatalf("lock %+v: %v", *r, err)
		}
		return rep
	}
	if r := do(lockReq(f.Ino, "A", 1, "set", lockrange.Write, 0, 99)); !r.Granted {
		t.Fatalf("first write lock refused: %+v", r)
	}
	r := do(lockReq(f.Ino, "B", 1, "set", lockrange.Read, 50, 60))
	if r.Granted || r.Typ != lockrange.Write || r.Start != 0 || r.End != 99 || r.Pid != 7 {
		t.Fatalf("another session's read inside the write lock: %+v", r)
	}
	if r := do(lockReq(f.Ino, "B", 1, "get", lockrange.Read, 0, lockrange.MaxOffset)); r.Typ != lockrange.Write {
		t.Fatalf("F_GETLK from B: %+v", r)
	}
	if r := do(lockReq(f.Ino, "A", 1, "get", lockrange.Write, 0, lockrange.MaxOffset)); r.Typ != lockrange.Unlock {
		t.Fatalf("F_GETLK of the holder itself: %+v", r)
	}
	// Same owner number in another session is another owner.
	if r := do(lockReq(f.Ino, "B", 1, "set", lockrange.Read, 100, 199)); !r.Granted {
		t.Fatalf("B's read past A's lock: %+v", r)
	}
	// flock does not conflict with POSIX locks, but with another flock.
	fl := lockReq(f.Ino, "B", 9, "set", lockrange.Write, 0, lockrange.MaxOffset)
	fl.Flock = true
	if r := do(fl); !r.Granted {
		t.Fatalf("flock beside POSIX locks: %+v", r)
	}
	fl2 := *fl
	fl2.Session = "A"
	if r := do(&fl2); r.Granted {
		t.Fatal("two sessions hold LOCK_EX at once")
	}
	// Release of A's owner frees the range for B.
	do(&wire.LockReq{Ino: f.Ino, Session: "A", Owner: 1, Cmd: "release"})
	if r := do(lockReq(f.Ino, "B", 1, "set", lockrange.Write, 0, 99)); !r.Granted {
		t.Fatalf("after A's release: %+v", r)
	}
	for _, bad := range []*wire.LockReq{
		lockReq(f.Ino, "A", 1, "set", 9, 0, 1),
		lockReq(f.Ino, "A", 1, "set", lockrange.Read, 5, 4),
		lockReq(f.Ino, "A", 1, "frob", lockrange.Read, 0, 1),
		lockReq(f.Ino, "A", 1, "get", lockrange.Unlock, 0, 1),
		lockReq(f.Ino, "", 1, "set", lockrange.Read, 0, 1),
	} {
		_, err := c.lock(ctx, bad)
		wantCode(t, err, wire.CodeInvalid)
	}
	_, err := c.lock(ctx, lockReq(999999, "A", 1, "set", lockrange.Read, 0, 1))
	wantCode(t, err, wire.CodeNotFound)
}

// TestLockWaitWakes: a waiting set is granted as soon as the holder
// unlocks, well before its wait ends; without an unlock it answers the
// conflict when the wait ends.
func TestLockWaitWakes(t *testing.T) {
	c, _ := newTestCore(t)
	ctx := context.Background()
	f := mkfile(t, c, wire.RootIno, "f")
	if r, _ := c.lock(ctx, lockReq(f.Ino, "A", 1, "set", lockrange.Write, 0, lockrange.MaxOffset)); !r.Granted {
		t.Fatal("lock refused")
	}
	w := lockReq(f.Ino, "B", 2, "set", lockrange.Write, 0, 10)
	w.WaitMs = 200
	start := time.Now()
	if r, _ := c.lock(ctx, w); r.Granted || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("wait without an unlock: %+v after %v", r, time.Since(start))
	}
	w.WaitMs = 60_000 // capped at maxLockWait
	done := make(chan wire.LockReply, 1)
	go func() {
		r, err := c.lock(ctx, w)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := c.lock(ctx, lockReq(f.Ino, "A", 1, "set", lockrange.Unlock, 0, lockrange.MaxOffset)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if !r.Granted {
			t.Fatalf("waiter after the unlock: %+v", r)
		}
	case <-time.After(maxLockWait / 2):
		// Without a wake-up it would be granted only when its wait ends.
		t.Fatal("the waiter was not woken by the unlock")
	}
}

// TestLocksOfDeadSessions: an expired session's locks are released by
// the reaper, and so are those of a session this process never heard of
// once a session TTL has passed since it started (a failover).
func TestLocksOfDeadSessions(t *testing.T) {
	c, clk := newTestCore(t)
	ctx := context.Background()
	f := mkfile(t, c, wire.RootIno, "f")
	for _, s := range []string{"A", "B"} {
		if r, _ := c.lock(ctx, lockReq(f.Ino, s, 1, "set", lockrange.Read, 0, 9)); !r.Granted {
			t.Fatal("lock refused")
		}
	}
	// A keeps its session alive; B goes silent.
	aliveA := func() {
		for range 4 {
			clk.advance(c.ttl / 3)
			c.mu.Lock()
			c.sessionFor("A")
			c.mu.Unlock()
			if _, err := c.reap(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	aliveA()
	list, err := loadLocks(c.db, f.Ino)
	if err != nil || len(list) != 1 || ownerSession(list[0].Owner) != "A" {
		t.Fatalf("after B expired: %+v, %v", list, err)
	}
	// A failover: a fresh process knows no session; A keeps sending
	// keep-alives, C's lock (written before) is of a mount that died.
	c.mu.Lock()
	t0 := c.begin("test")
	t0.putLocks(f.Ino, append(list, lockrange.Span{Owner: lockOwner("C", false, 1), Typ: lockrange.Read, Start: 20, End: 29}))
	if err := t0.commit(); err != nil {
		t.Fatal(err)
	}
	c.sessions = map[string]*session{}
	c.started = clk.now()
	c.mu.Unlock()
	if _, err := c.reap(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ := loadLocks(c.db, f.Ino); len(list) != 2 {
		t.Fatalf("locks reaped before a session TTL since the takeover: %+v", list)
	}
	aliveA()
	if list, _ := loadLocks(c.db, f.Ino); len(list) != 1 || ownerSession(list[0].Owner) != "A" {
		t.Fatalf("after the takeover's TTL: %+v", list)
	}
}

// TestFollowerWritesNothing: while a metaserver follows another's op log
// nothing may append to its own (a chaos run caught a follower logging a
// chunkserver in-sync-set change from a Consul health update, which made
// it skip the leader's entry of that seq).
func TestFollowerWritesNothing(t *testing.T) {
	c, _ := newTestCore(t)
	ctx := context.Background()
	before := c.lastSeq()
	c.follower.Store(true)
	_, err := c.create(ctx, wire.OpMkdir, &wire.CreateReq{Parent: wire.RootIno, Name: "x", Mode: wire.ModeDir | 0o755})
	wantCode(t, err, wire.CodeNotLeader)
	if err := c.refreshISR(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.heartbeat(ctx, &wire.Member{ID: "m1", Addr: "127.0.0.1:1", Group: 1, Healthy: true}); err == nil {
		t.Log("heartbeat answered without writing")
	}
	if got := c.lastSeq(); got != before {
		t.Fatalf("a follower wrote op-log entries %d..%d", before+1, got)
	}
	c.follower.Store(false)
	if _, err := c.create(ctx, wire.OpMkdir, &wire.CreateReq{Parent: wire.RootIno, Name: "x", Mode: wire.ModeDir | 0o755}); err != nil {
		t.Fatal(err)
	}
}
