package metaserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/internal/wire"
)

// ha is a metaserver's part in failover (Config.HA): it contends for the
// Consul leader lock, and while it leads it serves, keeps the in-sync set
// in Consul KV and holds each answer until every in-sync follower has
// fetched the change; otherwise it follows the leader's op log. The rules
// are in harules.go.
type ha struct {
	c       *core
	cc      *consul.Client
	lock    *consul.Lock
	log     *slog.Logger
	self    string // node id, persisted in Dir/node-id
	addr    string // address this metaserver serves on
	key     string // KV key of the haState
	lag     time.Duration
	secret  string
	fetch   *fetcher
	metrics *haMetrics

	mu         sync.Mutex
	leading    bool
	epoch      uint64 // epoch this node leads or follows
	leaderAddr string // the leader's address, for NOTLEADER hints
	isr        []string
	stateIndex uint64 // ModifyIndex of the haState this node wrote last
	followers  map[string]follower
	takeover   time.Time

	hwMoved *signal // fired when a fetch or an in-sync change may move the high-water mark
	isrKick *signal // fired when the in-sync set should be decided now, not at the next tick
}

// HA settings in Config (see there).
const (
	defaultHAPrefix = "reelfs/meta"
	defaultHALag    = 2 * time.Second
	// commitWait bounds how long an answer waits for the in-sync
	// followers; past it the client gets UNAVAILABLE and retries with the
	// same request id.
	commitWait = 10 * time.Second
)

// nodeID reads (creating on first start) the persisted node id in dir. A
// wiped disk gets a new id, so it can never pass for a member of the
// in-sync set it no longer holds the data of.
func nodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("metaserver: %s is empty", p)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("metaserver: node id: %w", err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := "m-" + hex.EncodeToString(raw[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("metaserver: node id: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("metaserver: node id: %w", err)
	}
	return id, nil
}

func newHA(c *core, cc *consul.Client, cfg Config, addr, checkID string, log *slog.Logger) (*ha, error) {
	id, err := nodeID(cfg.Dir)
	if err != nil {
		return nil, err
	}
	h := &ha{
		c: c, cc: cc, log: log.With("node", id), self: id, addr: addr,
		key: cfg.HAPrefix + "/state", lag: cfg.HALag, secret: cfg.Secret,
		followers: make(map[string]follower),
		hwMoved:   newSignal(),
		isrKick:   newSignal(),
	}
	h.lock, err = cc.NewLock(consul.LockOptions{
		Key:      cfg.HAPrefix + "/leader",
		Holder:   addr,
		CheckID:  checkID,
		Eligible: h.eligible,
	})
	if err != nil {
		return nil, err
	}
	h.fetch = newFetcher(h)
	c.follower.Store(true) // until it holds the lock
	return h, nil
}

// eligible: only a member of the persisted in-sync set whose database is
// whole may take the lock.
func (h *ha) eligible(ctx context.Context) (bool, error) {
	if h.c.resyncing() {
		return false, nil
	}
	st, _, err := h.state(ctx)
	if err != nil {
		return false, err
	}
	return mayLead(st, h.self), nil
}

// state reads the haState (nil when there is none yet) and its index.
func (h *ha) state(ctx context.Context) (*haState, uint64, error) {
	var st haState
	idx, err := h.cc.GetJSON(ctx, h.key, &st)
	if errors.Is(err, consul.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return &st, idx, nil
}

// currentEpoch is the epoch this node leads or follows.
func (h *ha) currentEpoch() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// isLeader reports whether this node serves, and the leader it knows.
func (h *ha) isLeader() (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.leading, h.leaderAddr
}

// notLeader is the refusal of a request this node cannot serve.
func (h *ha) notLeader() error {
	_, leader := h.isLeader()
	e := &wire.Error{Code: wire.CodeNotLeader, Msg: "metaserver " + h.addr + " does not lead", Leader: leader}
	if leader == h.addr {
		e.Leader = ""
	}
	return e
}

// run contends for leadership until ctx ends: follow while another leads,
// lead while holding the lock, follow again after losing it.
func (h *ha) run(ctx context.Context) error {
	for ctx.Err() == nil {
		fctx, stop := context.WithCancel(ctx)
		fdone := make(chan struct{})
		go func() {
			defer close(fdone)
			h.fetch.run(fctx)
		}()
		lost, err := h.lock.Acquire(ctx)
		stop()
		<-fdone
		if err != nil {
			if ctx.Err() != nil {
				h.fetch.leave()
				return nil
			}
			h.log.Warn("leader lock", "err", err)
			continue
		}
		if err := h.lead(ctx, lost); err != nil && ctx.Err() == nil {
			h.log.Warn("leadership ended", "err", err)
		}
		h.stepDown()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := h.lock.Release(rctx); err != nil {
			h.log.Debug("release leader lock", "err", err)
		}
		cancel()
	}
	return nil
}

// lead takes over: a new epoch by check-and-set, the in-memory state
// reloaded, the epoch's first entry written; then it serves and keeps the
// in-sync set until leadership is lost or ctx ends.
func (h *ha) lead(ctx context.Context, lost <-chan struct{}) error {
	start := time.Now()
	st, idx, err := h.state(ctx)
	if err != nil {
		return err
	}
	hist, err := epochHistory(h.c.db)
	if err != nil {
		return err
	}
	next, err := promote(st, h.self, h.addr, lastEpoch(hist))
	if err != nil {
		return err
	}
	if st != nil && st.LeaderID != "" && st.LeaderID != h.self {
		// The old leader lost its session: it is dead or cut off, and it
		// acknowledged nothing this node lacks (this node is in the set).
		// It rejoins once it has caught up again.
		next.ISR = slices.DeleteFunc(next.ISR, func(id string) bool { return id == st.LeaderID })
	}
	if err := h.lock.CASJSON(ctx, h.key, next, idx); err != nil {
		return fmt.Errorf("write epoch %d: %w", next.Epoch, err)
	}
	var check haState
	nidx, err := h.cc.GetJSON(ctx, h.key, &check)
	if err != nil || check.Epoch != next.Epoch || check.LeaderID != h.self {
		return fmt.Errorf("epoch %d not confirmed: %v", next.Epoch, err)
	}
	if err := h.c.reload(); err != nil {
		return fmt.Errorf("reload state: %w", err)
	}
	now := time.Now()
	h.mu.Lock()
	h.epoch, h.isr, h.stateIndex = next.Epoch, next.ISR, nidx
	h.leaderAddr, h.takeover = h.addr, now
	h.followers = make(map[string]follower)
	for _, id := range next.ISR {
		if id != h.self {
			// Give each in-sync follower the lag from now to fetch here.
			h.followers[id] = follower{CaughtUp: now, LastFetch: now}
		}
	}
	h.mu.Unlock()
	h.c.follower.Store(false)
	if err := h.c.startEpoch(next.Epoch); err != nil {
		return fmt.Errorf("start epoch %d: %w", next.Epoch, err)
	}
	h.mu.Lock()
	h.leading = true
	h.mu.Unlock()
	h.hwMoved.fire()
	if h.metrics != nil {
		h.metrics.failover.Observe(time.Since(start).Seconds())
	}
	h.log.Info("leading", "epoch", next.Epoch, "isr", next.ISR, "took", time.Since(start).Round(time.Millisecond))

	tick := time.NewTicker(h.lag / 8)
	defer tick.Stop()
	for {
		kick := h.isrKick.wait()
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return h.lock.Err()
		case <-tick.C:
		case <-kick:
		}
		if err := h.updateISR(ctx); err != nil {
			return err
		}
	}
}

// updateISR applies decideHAISR, writing a change by check-and-set under
// the lock before acting on it: a follower leaves the set (and answers
// stop waiting for it) only once Consul holds the smaller set.
func (h *ha) updateISR(ctx context.Context) error {
	h.mu.Lock()
	now := time.Now()
	next, changes := decideHAISR(h.isr, h.self, h.followers, now, h.lag)
	st := haState{Epoch: h.epoch, Leader: h.addr, LeaderID: h.self, ISR: next}
	idx := h.stateIndex
	h.mu.Unlock()
	if len(changes) == 0 {
		return nil
	}
	if err := h.lock.CASJSON(ctx, h.key, st, idx); err != nil {
		if errors.Is(err, consul.ErrNotLeader) || errors.Is(err, consul.ErrCASConflict) {
			return fmt.Errorf("in-sync set change refused, stepping down: %w", err)
		}
		h.log.Warn("in-sync set change not written; will retry", "err", err)
		return nil
	}
	var check haState
	nidx, err := h.cc.GetJSON(ctx, h.key, &check)
	if err != nil || check.Epoch != st.Epoch || check.LeaderID != h.self {
		return fmt.Errorf("in-sync set change not confirmed: %v", err)
	}
	h.mu.Lock()
	h.isr, h.stateIndex = next, nidx
	h.mu.Unlock()
	for _, ch := range changes {
		h.log.Info("metaserver in-sync set changed", "node", ch.Node, "join", ch.Join, "why", ch.Reason, "isr", next, "epoch", st.Epoch)
	}
	if h.metrics != nil {
		h.metrics.isr.Set(float64(len(next)))
	}
	h.hwMoved.fire()
	return nil
}

// stepDown stops serving; answers waiting for followers fail with
// NOTLEADER (the clients retry them with their request ids).
func (h *ha) stepDown() {
	h.mu.Lock()
	was := h.leading
	h.leading = false
	h.leaderAddr = ""
	h.c.follower.Store(true)
	h.mu.Unlock()
	if was {
		h.log.Warn("stepped down")
	}
	h.hwMoved.fire()
}

// observe records a follower's fetch (its ack of everything below from).
func (h *ha) observe(id, addr string, from uint64) {
	last := h.c.lastSeq()
	h.mu.Lock()
	f := h.followers[id]
	f = observeFetch(f, from, last, time.Now())
	f.Addr = addr
	h.followers[id] = f
	h.mu.Unlock()
	h.hwMoved.fire()
}

// leave records that follower id is shutting down, and has the in-sync
// set updated at once.
func (h *ha) leave(id string) {
	h.mu.Lock()
	f, ok := h.followers[id]
	if ok {
		f.Left = true
		h.followers[id] = f
	}
	h.mu.Unlock()
	if ok {
		h.log.Info("metaserver follower shutting down", "node", id)
		h.isrKick.fire()
	}
}

// polling marks a follower's long-poll at the log end as under way (or
// over).
func (h *ha) polling(id string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.followers[id]; ok {
		f.Polling = on
		if !on {
			// It held everything until now.
			f.CaughtUp = time.Now()
		}
		h.followers[id] = f
	}
}

// committed is the high-water mark: the last seq every in-sync member
// holds.
func (h *ha) committed() uint64 {
	last := h.c.lastSeq()
	h.mu.Lock()
	defer h.mu.Unlock()
	return highWater(h.isr, h.self, h.followers, last)
}

// waitCommitted returns once every in-sync member holds seq, or fails with
// NOTLEADER when this node stops leading, or UNAVAILABLE after commitWait.
func (h *ha) waitCommitted(ctx context.Context, seq uint64) error {
	timer := time.NewTimer(commitWait)
	defer timer.Stop()
	for {
		ch := h.hwMoved.wait()
		if ok, _ := h.isLeader(); !ok {
			return h.notLeader()
		}
		if h.committed() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-timer.C:
			return wire.Errorf(wire.ErrUnavailable, "op-log entry %d not yet held by every in-sync metaserver", seq)
		case <-ctx.Done():
			// The server shuts down (or the client went away): the change
			// may or may not be held by the followers; a retry with the
			// same request id finds out.
			return wire.Errorf(wire.ErrUnavailable, "metaserver stopping before op-log entry %d was held by every in-sync member", seq)
		}
	}
}

// status is what reelfs status shows of failover.
func (h *ha) status() wire.MetaHA {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := wire.MetaHA{Node: h.self, Leading: h.leading, Epoch: h.epoch, Leader: h.leaderAddr, ISR: slices.Clone(h.isr),
		LastSeq: h.c.lastSeq()}
	if h.leading {
		st.Committed = highWater(h.isr, h.self, h.followers, st.LastSeq)
	}
	if h.leading {
		for id, f := range h.followers {
			if f.Left && !slices.Contains(h.isr, id) {
				continue // shut down on purpose: not a fault to report
			}
			st.Followers = append(st.Followers, wire.MetaFollower{ID: id, Addr: f.Addr, Next: f.Next,
				LastFetch: f.LastFetch.UnixNano(), InSync: slices.Contains(h.isr, id)})
		}
		slices.SortFunc(st.Followers, func(a, b wire.MetaFollower) int { return strings.Compare(a.ID, b.ID) })
	}
	return st
}
