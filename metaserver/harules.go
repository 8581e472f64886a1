package metaserver

import (
	"fmt"
	"slices"
	"time"
)

// The rules of metaserver failover, as pure functions: who may lead, what
// a new leader writes, when a follower leaves or rejoins the in-sync set,
// how far the op log is acknowledged, and what a returning member must
// throw away. The I/O around them (Consul, the op-log fetch) lives in
// ha.go and follower.go.

// haState is the record the leader keeps in Consul KV (key
// <prefix>/state), changed only by check-and-set while holding the leader
// lock. Epoch grows by one with every leader; ISR lists the node ids that
// hold every acknowledged op-log entry (the leader among them).
type haState struct {
	Epoch    uint64   `json:"epoch"`
	Leader   string   `json:"leader"`    // address the leader serves on
	LeaderID string   `json:"leader_id"` // its node id
	ISR      []string `json:"isr"`
}

// mayLead reports whether node self may take the leader lock given the
// persisted state (nil: none yet, the cluster's first start). Only an
// in-sync member has every acknowledged change.
func mayLead(st *haState, self string) bool {
	if st == nil || st.Epoch == 0 {
		return true
	}
	return slices.Contains(st.ISR, self)
}

// promote is the state a new leader writes: the next epoch, its address,
// and the in-sync set unchanged (it is a member; on the first start it is
// the whole set). The epoch is also above every epoch in the member's own
// log (local), so that a lost state record (a Consul that forgot its KV)
// never brings an epoch number back. It fails when self may not lead.
func promote(st *haState, self, addr string, local uint64) (haState, error) {
	if !mayLead(st, self) {
		return haState{}, fmt.Errorf("node %s is not in the in-sync set %v", self, st.ISR)
	}
	next := haState{Epoch: local + 1, Leader: addr, LeaderID: self, ISR: []string{self}}
	if st != nil && st.Epoch > 0 {
		next.Epoch = max(st.Epoch, local) + 1
		next.ISR = slices.Clone(st.ISR)
	}
	return next, nil
}

// follower is what the leader knows of one follower from its fetches.
type follower struct {
	Addr string
	// Next is the "from" of its last fetch: it holds every entry below.
	Next uint64
	// LastFetch is when that fetch arrived.
	LastFetch time.Time
	// CaughtUp is the last time a fetch asked for an entry past the
	// leader's last entry as of the follower's previous fetch (Kafka's
	// rule: caught up to where the leader was one round earlier).
	CaughtUp time.Time
	// LeaderLast is the leader's last seq when that fetch was answered.
	LeaderLast uint64
	// Lost: a fetch asked for an entry below one it had acknowledged (it
	// lost its disk, or restored an old one): it no longer holds what it
	// acknowledged and must leave the set at once.
	Lost bool
	// Polling: a fetch that asked past the leader's last entry is waiting
	// for the next one. The follower holds everything, so it is caught up
	// for as long as the wait lasts (an idle leader must not drop it).
	Polling bool
	// Left: the follower said it is shutting down. It leaves the set at
	// once rather than after lag (answers stop waiting for it), and the
	// leader stops listing it; a later fetch brings it back.
	Left bool
}

// observeFetch updates f for a fetch of from at now, when the leader's
// last seq is last.
func observeFetch(f follower, from, last uint64, now time.Time) follower {
	if from < f.Next {
		f.Lost = true
	}
	f.Left = false
	if from > last || (!f.LastFetch.IsZero() && from > f.LeaderLast) {
		f.CaughtUp = now
	}
	f.Next, f.LastFetch, f.LeaderLast = from, now, last
	return f
}

// haChange is one decided change of the in-sync set.
type haChange struct {
	Node   string
	Join   bool
	Reason string
}

// decideHAISR returns the next in-sync set and why it changed: a member
// (other than the leader) leaves when it has not been caught up for lag,
// or lost what it acknowledged; a follower joins once caught up within
// lag, fetching, and not lost. The leader always stays.
func decideHAISR(isr []string, leader string, fs map[string]follower, now time.Time, lag time.Duration) ([]string, []haChange) {
	next := make([]string, 0, len(isr)+len(fs))
	var changes []haChange
	for _, id := range isr {
		if id == leader {
			next = append(next, id)
			continue
		}
		f, ok := fs[id]
		switch {
		case !ok:
			// Never fetched since this leader took over: give it lag from
			// the takeover, which the caller expresses by a zero-value
			// follower stamped at takeover.
			changes = append(changes, haChange{Node: id, Reason: "no fetch since the leader took over"})
		case f.Lost:
			changes = append(changes, haChange{Node: id, Reason: "fetched below what it acknowledged"})
		case f.Left:
			changes = append(changes, haChange{Node: id, Reason: "shutting down"})
		case f.Polling:
			next = append(next, id)
		case now.Sub(f.CaughtUp) > lag:
			changes = append(changes, haChange{Node: id, Reason: fmt.Sprintf("not caught up for %v", now.Sub(f.CaughtUp).Round(time.Millisecond))})
		default:
			next = append(next, id)
		}
	}
	if !slices.Contains(next, leader) {
		next = append(next, leader)
	}
	ids := make([]string, 0, len(fs))
	for id := range fs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		f := fs[id]
		if slices.Contains(next, id) || slices.Contains(isr, id) || f.Lost || f.Left {
			continue
		}
		if f.Polling || now.Sub(f.CaughtUp) <= lag && now.Sub(f.LastFetch) <= lag && !f.CaughtUp.IsZero() {
			next = append(next, id)
			changes = append(changes, haChange{Node: id, Join: true, Reason: "caught up"})
		}
	}
	slices.Sort(next)
	return next, changes
}

// highWater is the last op-log seq every in-sync member holds: the
// leader's last seq, lowered to Next-1 of each in-sync follower. An entry
// at or below it may be acknowledged.
func highWater(isr []string, leader string, fs map[string]follower, last uint64) uint64 {
	hw := last
	for _, id := range isr {
		if id == leader {
			continue
		}
		f, ok := fs[id]
		if !ok || f.Next == 0 {
			return 0
		}
		hw = min(hw, f.Next-1)
	}
	return hw
}

// epochStart is one entry of the epoch history: the first op-log seq
// written under an epoch.
type epochStart struct {
	Epoch uint64 `json:"epoch"`
	Start uint64 `json:"start"`
}

// epochEnd answers a follower whose last entry was written under epoch:
// the leader's largest epoch not above it, and the last seq of that epoch
// in the leader's log (Kafka's OffsetsForLeaderEpoch). history is sorted
// by epoch; last is the leader's last seq. ok is false when the leader
// knows no epoch at or below the follower's (its log starts later).
func epochEnd(history []epochStart, last, epoch uint64) (uint64, uint64, bool) {
	i := -1
	for j, e := range history {
		if e.Epoch <= epoch {
			i = j
		}
	}
	if i < 0 {
		return 0, 0, false
	}
	if i == len(history)-1 {
		return history[i].Epoch, last, true
	}
	return history[i].Epoch, history[i+1].Start - 1, true
}

// truncateTo is where a returning member's log must end before it may
// follow: its entries past the leader's end of its last epoch were never
// acknowledged (an acknowledged entry is in the leader's log) and must go.
// It returns the member's last seq when nothing must go, and ok false
// when the member must take a snapshot instead (the leader cannot say, or
// the member never followed and holds a log of its own).
func truncateTo(memberLast, memberEpoch uint64, history []epochStart, leaderLast uint64) (uint64, bool) {
	if memberEpoch == 0 {
		// It never followed a leader: what it holds (at least the root
		// its own first start wrote) is its own, not a prefix of the
		// leader's log. It takes the leader's state whole.
		return 0, memberLast == 0
	}
	_, end, ok := epochEnd(history, leaderLast, memberEpoch)
	if !ok {
		return 0, false
	}
	return min(memberLast, end), true
}
