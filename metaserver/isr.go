package metaserver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// isrRules are the bounds of the in-sync set, from Config.
type isrRules struct {
	// LagTime: a member that has not caught up with an in-sync peer's
	// binlog for this long leaves the set.
	LagTime time.Duration
	// LagBytes: a member this many bytes of puts behind an in-sync peer
	// leaves the set; 0 disables the bound.
	LagBytes uint64
}

// joinBytes is how far behind (bytes of puts) a member may still be when
// it rejoins: it caught up recently and is fetching, and the PUTs that
// wait for it from then on cover the rest.
const joinBytes = 2 * wire.MaxBlockSize

// isrChange is a decision of decideISR: the new set and why each member
// left or joined (for the log).
type isrChange struct {
	ISR     []string
	Changed bool
	Why     []string
}

// writable reports whether m may hold a new block: the tracker hears from
// it, it says it is healthy, and its disk is not at the reserve.
func writable(m wire.Member) bool { return m.Healthy && !m.Full }

// followerOf returns source's report of follower id; a member that never
// fetched is reported as caught up when the source started.
func followerOf(source wire.Member, id string) wire.Follower {
	for _, f := range source.Followers {
		if f.ID == id {
			return f
		}
	}
	return wire.Follower{ID: id, CaughtUp: source.Started, Behind: source.Seq}
}

// resyncing reports whether m is still copying a peer's inventory.
func resyncing(m wire.Member) bool {
	for _, s := range m.Sources {
		if s.Resync {
			return true
		}
	}
	return false
}

// decideISR is the one place the in-sync set of a group changes; it is a
// pure function of the tracker's view at now (members with Healthy
// already computed from heartbeat age and their own report) and the
// current set. The rules, in order:
//
//  1. A member the tracker no longer knows, that is unhealthy or full,
//     leaves.
//  2. A member that an in-sync peer reports as not caught up with its
//     binlog for LagTime (or LagBytes behind) leaves, unless it is the
//     last writable member of the set: a set is never emptied for lag.
//  3. A writable member that is not in the set joins once every writable
//     in-sync peer reports it caught up (nothing behind, or caught up
//     within LagTime/4 and less than joinBytes behind) and it is copying
//     no peer's inventory. When no writable member is in the set (a new
//     group, or every in-sync member died), the writable members are
//     judged against each other instead, so a group of empty members
//     starts with all of them.
//
// The set only says who must hold a block before a PUT is acknowledged;
// blocks are never taken back, so a member outside it keeps serving what
// it has.
func decideISR(now time.Time, members []wire.Member, cur []string, r isrRules) isrChange {
	byID := make(map[string]wire.Member, len(members))
	for _, m := range members {
		byID[m.ID] = m
	}
	var next []string
	var why []string
	// Rule 1.
	for _, id := range cur {
		m, ok := byID[id]
		switch {
		case !ok:
			why = append(why, id+" left: removed from the group")
		case !m.Healthy:
			why = append(why, id+" left: unhealthy (no heartbeat, it reports a failure, or its Consul check fails)")
		case m.Full:
			why = append(why, id+" left: disk at its reserve")
		default:
			next = append(next, id)
		}
	}
	// Rule 2.
	lagging := func(id string, peers []string) string {
		for _, p := range peers {
			if p == id {
				continue
			}
			f := followerOf(byID[p], id)
			if age := now.Sub(time.Unix(0, f.CaughtUp)); age > r.LagTime {
				return fmt.Sprintf("%s left: not caught up with %s's binlog for %v (%d entries behind)",
					id, p, age.Round(time.Millisecond), f.Behind)
			}
			if r.LagBytes > 0 && f.BehindBytes > r.LagBytes {
				return fmt.Sprintf("%s left: %d bytes behind %s's binlog (bound %d)", id, f.BehindBytes, p, r.LagBytes)
			}
		}
		return ""
	}
	if len(next) > 1 {
		keep := next[:0:0]
		for _, id := range next {
			if reason := lagging(id, next); reason != "" {
				why = append(why, reason)
				continue
			}
			keep = append(keep, id)
		}
		if len(keep) == 0 { // never empty the set for lag
			keep = next[:1]
		}
		next = keep
	}
	// Rule 3.
	peers := next
	if len(peers) == 0 {
		for _, m := range members {
			if writable(m) {
				peers = append(peers, m.ID)
			}
		}
	}
	var joined []string
	for _, m := range members {
		if !writable(m) || slices.Contains(next, m.ID) || resyncing(m) {
			continue
		}
		ok := true
		for _, p := range peers {
			if p == m.ID {
				continue
			}
			f := followerOf(byID[p], m.ID)
			recent := now.Sub(time.Unix(0, f.CaughtUp)) <= r.LagTime/4 && f.BehindBytes < joinBytes
			if f.Behind != 0 && !recent {
				ok = false
				break
			}
		}
		if ok {
			joined = append(joined, m.ID)
			why = append(why, m.ID+" joined: caught up with every in-sync peer")
		}
	}
	next = append(next, joined...)
	slices.Sort(next)
	sorted := slices.Clone(cur)
	slices.Sort(sorted)
	return isrChange{ISR: next, Changed: !slices.Equal(next, sorted), Why: why}
}

// minCopiesOf is a group's write quorum floor: the largest --min-copies
// any of its members reports (at least 1).
func minCopiesOf(members []wire.Member) int {
	n := 1
	for _, m := range members {
		n = max(n, m.MinCopies)
	}
	return n
}

// quorumProblem explains why group g cannot take new blocks, or "" when it
// can: fewer writable in-sync members than its min-copies.
func quorumProblem(g wire.Group) string {
	var in []string
	var out []string
	for _, m := range g.Members {
		switch {
		case slices.Contains(g.ISR, m.ID) && writable(m):
			in = append(in, m.ID)
		case !m.Healthy:
			out = append(out, m.ID+" down")
		case m.Full:
			out = append(out, m.ID+" full")
		case resyncing(m):
			out = append(out, m.ID+" resyncing")
		default:
			out = append(out, m.ID+" catching up")
		}
	}
	if len(in) >= g.MinCopies {
		return ""
	}
	s := fmt.Sprintf("group %d has %d in-sync member(s), --min-copies needs %d", g.ID, len(in), g.MinCopies)
	if len(out) > 0 {
		s += " (" + strings.Join(out, ", ") + ")"
	}
	return s
}
