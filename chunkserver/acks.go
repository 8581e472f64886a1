package chunkserver

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// groupView is this member's group as the tracker last described it in a
// heartbeat reply.
type groupView struct {
	known     bool     // a reply arrived since start
	version   uint64   // the in-sync set's version
	isr       []string // the in-sync set
	minCopies int      // the group's write quorum floor
	peers     []peer   // the other members
}

// peer is another member of the group.
type peer struct {
	id   string
	addr string
}

func viewOf(g wire.Group, self string) groupView {
	v := groupView{known: true, version: g.ISRVersion, isr: slices.Clone(g.ISR), minCopies: g.MinCopies}
	for _, m := range g.Members {
		if m.ID != self {
			v.peers = append(v.peers, peer{id: m.ID, addr: m.Addr})
		}
	}
	return v
}

// quorumState is the rule that acknowledges a PUT: the put logged at seq
// is acknowledged once every other member of the in-sync set has fetched
// this member's binlog past seq (acks[id] >= seq) and the set has at
// least minCopies members. A member outside the set, or a set below
// minCopies, cannot acknowledge at all (NOSPACE naming the cause: the
// client places the block again, elsewhere). Without a view (no reply
// from the tracker yet) nothing is decided.
func quorumState(seq uint64, self string, v groupView, acks map[string]uint64) (done bool, err error) {
	if !v.known {
		return false, nil
	}
	if !slices.Contains(v.isr, self) {
		return false, wire.Errorf(wire.ErrNoSpace, "chunkserver %s: not in its group's in-sync set %v (catching up, full or failing): place the block elsewhere", self, v.isr)
	}
	if len(v.isr) < v.minCopies {
		return false, wire.Errorf(wire.ErrNoSpace, "chunkserver %s: group's in-sync set %v is smaller than --min-copies %d", self, v.isr, v.minCopies)
	}
	for _, id := range v.isr {
		if id != self && acks[id] < seq {
			return false, nil
		}
	}
	return true, nil
}

// followerState is what a source knows of one follower of its binlog.
type followerState struct {
	ack       uint64    // highest seq the follower holds (its last from - 1)
	caughtUp  time.Time // when it last held everything the source had
	lastFetch time.Time
	// prevTime and prevLast are the time and the source's last seq at
	// the follower's previous fetch: a fetch past prevLast means the
	// follower had caught up as of prevTime (Kafka's rule, which keeps
	// a follower in sync under a steady stream of writes).
	prevTime time.Time
	prevLast uint64
}

// followers tracks the peers that fetch this member's binlog and the
// PUTs waiting for them. It holds the replication state of the source
// side: acknowledgements, catch-up times and the group view that decides
// quorums.
type followers struct {
	self    string
	started time.Time

	// kick asks for a heartbeat now (set once, before use), so a PUT that
	// the current view refuses can check with a fresh one.
	kick func()

	mu      sync.Mutex // guards everything below
	byID    map[string]*followerState
	view    groupView
	views   uint64        // how many views were installed
	changed chan struct{} // closed and replaced on every change
	waiting map[*waiter]struct{}
}

type waiter struct {
	seq   uint64
	since time.Time
}

func newFollowers(self string, now time.Time) *followers {
	return &followers{self: self, started: now, byID: make(map[string]*followerState),
		changed: make(chan struct{}), waiting: make(map[*waiter]struct{})}
}

// broadcastLocked wakes every waiter to re-check its quorum.
func (f *followers) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// fetched records a follower's fetch from seq from, made when this
// member's last durable seq was last.
func (f *followers) fetched(id string, from, last uint64, now time.Time) {
	if id == "" || id == f.self || from == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.byID[id]
	if st == nil {
		st = &followerState{caughtUp: f.started}
		f.byID[id] = st
	}
	switch {
	case from > last:
		st.caughtUp = now
	case from > st.prevLast && !st.prevTime.IsZero():
		if st.prevTime.After(st.caughtUp) {
			st.caughtUp = st.prevTime
		}
	}
	st.prevTime, st.prevLast = now, last
	st.lastFetch = now
	if from-1 != st.ack {
		st.ack = from - 1
		f.broadcastLocked()
	}
}

// setView installs the tracker's latest description of the group.
func (f *followers) setView(v groupView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.view = v
	f.views++
	f.broadcastLocked()
}

// currentView returns the latest view.
func (f *followers) currentView() groupView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

// wait blocks until the put logged at seq is acknowledged by the quorum
// (quorumState), the quorum becomes impossible, or ctx ends. A view that
// refuses the PUT (this member out of the set, or the set too small) may
// be stale: the first refusal asks for a fresh view (kick) and decides
// again with it, waiting at most freshViewWait for one.
func (f *followers) wait(ctx context.Context, seq uint64, now time.Time) error {
	w := &waiter{seq: seq, since: now}
	f.mu.Lock()
	f.waiting[w] = struct{}{}
	defer func() {
		f.mu.Lock()
		delete(f.waiting, w)
		f.mu.Unlock()
	}()
	var refusedAt uint64 // views when the view first refused; 0: not yet
	var refused error
	var timeout <-chan time.Time
	for {
		acks := make(map[string]uint64, len(f.byID))
		for id, st := range f.byID {
			acks[id] = st.ack
		}
		done, err := quorumState(seq, f.self, f.view, acks)
		views := f.views
		ch := f.changed
		f.mu.Unlock()
		switch {
		case done:
			return nil
		case err != nil && refusedAt != 0 && views != refusedAt:
			return err // refused again by a view that came after the first refusal
		case err != nil && refusedAt == 0:
			refusedAt, refused = views, err
			t := time.NewTimer(freshViewWait)
			defer t.Stop()
			timeout = t.C
			if f.kick != nil {
				f.kick()
			}
		}
		select {
		case <-ch:
		case <-timeout:
			return refused
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
}

// freshViewWait bounds the wait for a fresh view after a refusal.
const freshViewWait = 5 * time.Second

// oldestWait is how long the oldest PUT has waited for its quorum (0
// when none waits).
func (f *followers) oldestWait(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d time.Duration
	for w := range f.waiting {
		d = max(d, now.Sub(w.since))
	}
	return d
}

// report describes every follower for the tracker: its ack, when it last
// caught up, and how far behind last it is. Peers in the view that never
// fetched are reported too, as caught up when this process started, so
// the tracker can tell a silent follower from one it has not heard of.
func (f *followers) report(last uint64, bytesAfter func(uint64) uint64) []wire.Follower {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]wire.Follower, 0, len(f.byID))
	seen := make(map[string]bool, len(f.byID))
	for id, st := range f.byID {
		seen[id] = true
		r := wire.Follower{ID: id, Ack: st.ack, CaughtUp: st.caughtUp.UnixNano()}
		if last > st.ack {
			r.Behind = last - st.ack
			r.BehindBytes = bytesAfter(st.ack)
		}
		out = append(out, r)
	}
	for _, p := range f.view.peers {
		if !seen[p.id] {
			out = append(out, wire.Follower{ID: p.id, CaughtUp: f.started.UnixNano(), Behind: last,
				BehindBytes: bytesAfter(0)})
		}
	}
	slices.SortFunc(out, func(a, b wire.Follower) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}
