package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Lock is one contender for a leader key. The holder's session is tied to
// the node's serfHealth and to the holder's own service check, so a
// process that dies fails its check within a second or two, Consul
// invalidates the session and releases the key, and after LockDelay
// another contender's Acquire succeeds. The key's value is the holder's
// address, for followers (see WatchLeader).
//
// A Lock is used by one goroutine at a time: Acquire, then Release, then
// maybe Acquire again. Err, Session and CASJSON may be called from any
// goroutine.
type Lock struct {
	c   *Client
	opt LockOptions
	log *slog.Logger

	mu      sync.Mutex
	session string             // the session holding key; "" when not held
	lost    chan struct{}      // closed when leadership ends; nil before the first Acquire
	err     error              // why lost was closed
	stop    context.CancelFunc // stops the monitor
	done    chan struct{}      // closed when the monitor has returned
}

// LockOptions describe one contender.
type LockOptions struct {
	// Key is the leader key, e.g. reelfs/meta/leader.
	Key string
	// Holder is the contender's address, written as the key's value.
	Holder string
	// CheckID is the holder's own service check (Registration.CheckID),
	// registered with the same agent. Empty ties the session to the
	// node's serfHealth alone, which does not notice a dead process on a
	// live node, so daemons always give one.
	CheckID string
	// Eligible, when set, is asked before each attempt to take a free key;
	// while it answers false (or fails) Acquire keeps waiting. A
	// metaserver answers whether it is in the persisted in-sync set, so
	// that only a member can lead. It is a filter, not a fence: the set
	// may change right after the answer, so a new leader checks again
	// under its epoch.
	Eligible func(ctx context.Context) (bool, error)
}

// NewLock returns a contender described by opt.
func (c *Client) NewLock(opt LockOptions) (*Lock, error) {
	if opt.Key == "" || strings.HasPrefix(opt.Key, "/") {
		return nil, fmt.Errorf("%w: lock key %q must be non-empty and not start with /", ErrInvalidConfig, opt.Key)
	}
	if opt.Holder == "" {
		return nil, fmt.Errorf("%w: lock %s: holder address is empty", ErrInvalidConfig, opt.Key)
	}
	return &Lock{c: c, opt: opt, log: c.log.With("lock", opt.Key, "holder", opt.Holder)}, nil
}

// Acquire blocks until this contender holds the key or ctx ends. While
// another session holds the key it waits by blocking query, holding no
// session of its own; when the key is free, and LockOptions.Eligible (if
// set) agrees, it creates a session (which fails until the holder's check
// passes) and takes the key, retrying while Consul's lock-delay refuses it.
//
// The returned channel is closed when leadership ends: the session was
// invalidated, the key was taken away or deleted, Consul stayed
// unreachable for Config.LostAfter, or Release was called. Err then says
// why. A leader stops acting on its leadership when the channel closes;
// epochs fence whatever it does in the meantime.
func (l *Lock) Acquire(ctx context.Context) (<-chan struct{}, error) {
	if _, err := l.Session(); err == nil {
		return nil, ErrLockHeld
	}
	l.reap() // the monitor of a lost leadership may still be finishing
	cfg := l.c.cfg
	var (
		sid       string // our session, created once the key looked free
		waitIndex uint64 // nonzero: the key was held by another at this index
		failures  int
		lastErr   string
		// stale is the last session of an earlier process at this
		// address that this Acquire found holding the key (logged once).
		stale string
	)
	// Give up the session on every way out but success, so no session of
	// a contender that stopped trying lingers until its TTL.
	defer func() {
		if sid != "" {
			l.destroy(sid)
		}
	}()
	retry := func(what string, err error, hi time.Duration) error {
		if msg := err.Error(); msg != lastErr {
			l.log.Info("consul: lock: "+what, "err", err)
			lastErr = msg
		}
		d := jitter(backoff(failures, cfg.RetryMin, hi))
		failures++
		waitIndex = 0
		return sleep(ctx, d)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
		}
		pair, index, err := l.read(ctx, waitIndex)
		if err != nil {
			if err := retry("read leader key", err, cfg.RetryMax); err != nil {
				return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
			}
			continue
		}
		if pair != nil && pair.Session != "" && pair.Session != sid && string(pair.Value) == l.opt.Holder {
			// Held under our own address, but not by this Lock: the
			// session of an earlier process at this address (no two live
			// processes listen on one), killed and restarted faster than
			// its check could fail. Its check passes again (the restarted
			// process answers it) and nobody renews the session, so Consul
			// would keep it, and the key, for its TTL and up to as long
			// again before reaping it, leaving the cluster without a
			// leader. End it; the lock-delay then applies as for any
			// holder that died.
			if pair.Session != stale {
				l.log.Warn("consul: lock held by an earlier process at this address; ending its session",
					"session", pair.Session)
				stale = pair.Session
			}
			l.destroy(pair.Session)
			if err := retry("acquire key", errors.New("held by an earlier process at this address"), cfg.LockDelay); err != nil {
				return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
			}
			continue
		}
		if pair != nil && pair.Session != "" && pair.Session != sid {
			// Held by another: wait for it to change, without a session.
			if sid != "" {
				l.destroy(sid)
				sid = ""
			}
			waitIndex = nextIndex(waitIndex, index)
			failures = 0
			continue
		}
		waitIndex = 0
		if l.opt.Eligible != nil {
			ok, err := l.opt.Eligible(ctx)
			if err == nil && !ok {
				err = errNotEligible
			}
			if err != nil {
				if sid != "" {
					l.destroy(sid)
					sid = ""
				}
				if err := retry("eligibility", err, cfg.RetryMax); err != nil {
					return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
				}
				continue
			}
		}
		if sid == "" {
			if sid, err = l.createSession(ctx); err != nil {
				// Most often the holder's check is not passing yet; it is
				// run every CheckInterval, so look that often.
				if err := retry("create session", err, min(cfg.RetryMax, cfg.CheckInterval)); err != nil {
					return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
				}
				continue
			}
		}
		ok, err := l.tryAcquire(ctx, sid)
		if err != nil {
			// Most often our session was invalidated between creating and
			// using it (our check failed): start again with a new one.
			l.destroy(sid)
			sid = ""
			if err := retry("acquire key", err, cfg.RetryMax); err != nil {
				return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
			}
			continue
		}
		if !ok {
			// Lock-delay after the last holder's session was invalidated,
			// or another contender was faster: look again soon.
			if err := retry("acquire key", errors.New("refused (lock-delay or taken)"), cfg.LockDelay); err != nil {
				return nil, fmt.Errorf("consul: acquire %s: %w", l.opt.Key, err)
			}
			continue
		}
		l.log.Info("consul: lock acquired", "session", sid)
		lost := l.start(sid)
		sid = "" // the monitor owns it now
		return lost, nil
	}
}

// errNotEligible is what Acquire logs while LockOptions.Eligible says no.
var errNotEligible = errors.New("not eligible to lead")

// read is a blocking read of the leader key when waitIndex is nonzero.
func (l *Lock) read(ctx context.Context, waitIndex uint64) (*api.KVPair, uint64, error) {
	cfg := l.c.cfg
	q := &api.QueryOptions{}
	timeout := cfg.RequestTimeout
	if waitIndex != 0 {
		q.WaitIndex, q.WaitTime = waitIndex, cfg.WaitTime
		timeout += cfg.WaitTime + cfg.WaitTime/16
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pair, meta, err := l.c.api.KV().Get(l.opt.Key, q.WithContext(ctx))
	if err != nil {
		return nil, 0, err
	}
	return pair, meta.LastIndex, nil
}

func (l *Lock) createSession(ctx context.Context) (string, error) {
	cfg := l.c.cfg
	se := &api.SessionEntry{
		Name:       "reelfs lock " + l.opt.Key,
		Behavior:   api.SessionBehaviorRelease,
		TTL:        cfg.SessionTTL.String(),
		LockDelay:  cfg.LockDelay,
		NodeChecks: []string{"serfHealth"},
	}
	if l.opt.CheckID != "" {
		se.ServiceChecks = []api.ServiceCheck{{ID: l.opt.CheckID}}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	id, _, err := l.c.api.Session().Create(se, (&api.WriteOptions{}).WithContext(ctx))
	return id, err
}

func (l *Lock) tryAcquire(ctx context.Context, sid string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.c.cfg.RequestTimeout)
	defer cancel()
	ok, _, err := l.c.api.KV().Acquire(&api.KVPair{Key: l.opt.Key, Value: []byte(l.opt.Holder), Session: sid},
		(&api.WriteOptions{}).WithContext(ctx))
	return ok, err
}

// destroy ends a session, best effort: a session that cannot be destroyed
// now dies of its TTL.
func (l *Lock) destroy(sid string) {
	ctx, cancel := context.WithTimeout(context.Background(), min(l.c.cfg.RequestTimeout, 2*time.Second))
	defer cancel()
	if _, err := l.c.api.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		l.log.Debug("consul: destroy session", "session", sid, "err", err)
	}
}

// start records the held lock and starts its monitor.
func (l *Lock) start(sid string) <-chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	l.mu.Lock()
	defer l.mu.Unlock()
	l.session, l.err = sid, nil
	l.lost, l.stop, l.done = make(chan struct{}), cancel, make(chan struct{})
	go l.monitor(ctx, sid, l.done)
	return l.lost
}

// monitor renews the session and watches the leader key until leadership
// is lost or ctx is cancelled by Release. It renews every
// min(SessionTTL/2, LostAfter/3), so a holder that hears nothing for
// LostAfter has missed several renewals, and between renewals it blocks on
// the key, so an invalidated session (Consul releases the key at once) is
// noticed within one round trip.
func (l *Lock) monitor(ctx context.Context, sid string, done chan struct{}) {
	defer close(done)
	cfg := l.c.cfg
	renewEvery := min(cfg.SessionTTL/2, cfg.LostAfter/3)
	view := lockView{keyFound: true, keySession: sid, lastContact: time.Now()}
	var index uint64
	nextRenew := time.Now().Add(renewEvery)
	for {
		if reason := lockLostReason(sid, view, time.Now(), cfg.LostAfter); reason != "" {
			l.lose(sid, reason)
			return
		}
		// No request outlives the moment the holder must step down.
		deadline := view.lastContact.Add(cfg.LostAfter)
		if !time.Now().Before(nextRenew) {
			// Consul restarts the TTL when it handles the renewal, after
			// it was sent: counting from the send errs on the safe side.
			sent := time.Now()
			rctx, cancel := context.WithDeadline(ctx, deadline)
			entry, _, err := l.c.api.Session().Renew(sid, (&api.WriteOptions{}).WithContext(rctx))
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				l.log.Debug("consul: renew session", "session", sid, "err", err)
				if sleep(ctx, max(0, min(cfg.RetryMin, time.Until(deadline)))) != nil {
					return
				}
			default:
				view.lastContact = sent
				view.sessionGone = entry == nil
				nextRenew = view.lastContact.Add(renewEvery)
			}
			continue
		}
		wait := time.Until(nextRenew)
		if wait < 10*time.Millisecond {
			// Too short to be worth a blocking query.
			if sleep(ctx, wait) != nil {
				return
			}
			continue
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		pair, meta, err := l.c.api.KV().Get(l.opt.Key, (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(rctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			l.log.Debug("consul: watch leader key", "err", err)
			index = 0
			if sleep(ctx, max(0, min(cfg.RetryMin, time.Until(deadline)))) != nil {
				return
			}
		default:
			view.lastContact = time.Now()
			view.keyFound = pair != nil
			view.keySession = ""
			if pair != nil {
				view.keySession = pair.Session
			}
			index = nextIndex(index, meta.LastIndex)
		}
	}
}

// reap stops the monitor, if one runs, and waits for it to return.
func (l *Lock) reap() {
	l.mu.Lock()
	stop, done := l.stop, l.done
	l.stop, l.done = nil, nil
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// lose ends leadership for a reason the monitor observed.
func (l *Lock) lose(sid, reason string) {
	l.log.Warn("consul: leadership lost", "session", sid, "reason", reason)
	l.mu.Lock()
	l.session = ""
	l.err = fmt.Errorf("%w: %s: %s", ErrLockLost, l.opt.Key, reason)
	close(l.lost)
	l.mu.Unlock()
	// A holder that only lost touch with Consul may still own a live
	// session that keeps the key from everyone else; end it if Consul
	// listens, else its TTL does.
	l.destroy(sid)
}

// Err is nil while the lock is held, and after leadership ended says why:
// ErrLockLost, or ErrNotLeader after Release or before any Acquire.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.session != "":
		return nil
	case l.err != nil:
		return l.err
	}
	return fmt.Errorf("consul: lock %s: %w", l.opt.Key, ErrNotLeader)
}

// Session is the id of the session holding the key, or ErrNotLeader.
func (l *Lock) Session() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session == "" {
		return "", fmt.Errorf("consul: lock %s: %w", l.opt.Key, ErrNotLeader)
	}
	return l.session, nil
}

// Release gives up leadership: it stops the monitor, releases the key
// (which keeps the holder's address but no session, and is free at once:
// an explicit release imposes no lock-delay) and destroys the session. The
// channel from Acquire is closed, if leadership had not already ended.
// Releasing a Lock that is not held does nothing.
func (l *Lock) Release(ctx context.Context) error {
	l.reap()
	l.mu.Lock()
	sid := l.session
	if sid != "" {
		l.session = ""
		l.err = fmt.Errorf("consul: lock %s released: %w", l.opt.Key, ErrNotLeader)
		close(l.lost)
	}
	l.mu.Unlock()
	if sid == "" {
		return nil // not held, or lost already: lose destroyed the session
	}
	rctx, cancel := context.WithTimeout(ctx, l.c.cfg.RequestTimeout)
	defer cancel()
	_, _, err := l.c.api.KV().Release(&api.KVPair{Key: l.opt.Key, Value: []byte(l.opt.Holder), Session: sid},
		(&api.WriteOptions{}).WithContext(rctx))
	l.destroy(sid)
	if err != nil {
		return fmt.Errorf("consul: release %s: %w", l.opt.Key, err)
	}
	l.log.Info("consul: lock released", "session", sid)
	return nil
}

// CASJSON writes v as JSON to key if this Lock still holds the leader key
// and key's ModifyIndex is modifyIndex (0: key must not exist), in one
// Consul transaction: a leader whose session was invalidated, even one
// that has not noticed yet, cannot write. It returns ErrNotLeader or
// ErrCASConflict when the respective condition fails.
func (l *Lock) CASJSON(ctx context.Context, key string, v any, modifyIndex uint64) error {
	sid, err := l.Session()
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("consul: encode %s: %w", key, err)
	}
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: l.opt.Key, Session: sid}},
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: data, Index: modifyIndex}},
	}
	ctx, cancel := context.WithTimeout(ctx, l.c.cfg.RequestTimeout)
	defer cancel()
	ok, resp, _, err := l.c.api.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: leader cas %s: %w", key, err)
	}
	if ok {
		return nil
	}
	for _, e := range resp.Errors {
		if e.OpIndex == 0 {
			return fmt.Errorf("consul: leader cas %s: %s: %w", key, e.What, ErrNotLeader)
		}
	}
	return fmt.Errorf("consul: leader cas %s at index %d: %w", key, modifyIndex, ErrCASConflict)
}

// Leader is what the leader key says.
type Leader struct {
	// Address is the last holder's address; "" when the key does not exist.
	Address string
	// Session holds the key; "" when nobody leads right now.
	Session string
}

// Held reports whether someone holds the key.
func (ld Leader) Held() bool { return ld.Session != "" }

// Leader reads the leader key once.
func (c *Client) Leader(ctx context.Context, key string) (Leader, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	ld, _, err := c.leader(key, (&api.QueryOptions{}).WithContext(ctx))
	return ld, err
}

// WatchLeader calls fn with the leader key's content when it first hears
// from Consul and on each change, until ctx ends; it then returns
// ctx.Err(). Followers use it to find the leader, and to learn at once
// that there is none (Session empty) while a failover runs.
func (c *Client) WatchLeader(ctx context.Context, key string, fn func(Leader)) error {
	fetch := func(q *api.QueryOptions) (Leader, *api.QueryMeta, error) { return c.leader(key, q) }
	return watch(ctx, c, "leader "+key, fetch, func(a, b Leader) bool { return a == b }, fn)
}

func (c *Client) leader(key string, q *api.QueryOptions) (Leader, *api.QueryMeta, error) {
	pair, meta, err := c.api.KV().Get(key, q)
	if err != nil {
		return Leader{}, nil, fmt.Errorf("consul: leader %s: %w", key, err)
	}
	if pair == nil {
		return Leader{}, meta, nil
	}
	return Leader{Address: string(pair.Value), Session: pair.Session}, meta, nil
}
