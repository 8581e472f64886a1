package consul

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// This file holds the decisions of the package as plain functions, so that
// table tests can drive them without an agent.

// backoff returns the pause before retry number attempt (0 for the first
// retry): lo doubled per attempt, capped at hi.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// jitter spreads d over [d/2, d) so that many daemons retrying against one
// agent after it restarts do not arrive in step.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// nextIndex applies Consul's rules for blocking queries to the index a
// response carried (X-Consul-Index), given the one the request waited on,
// and returns the index to wait on next. An index that went backwards (a
// snapshot restore, a state store reset, a different server) restarts the
// loop from 0; an index of 0 is never waited on, as Consul would answer at
// once and the loop would spin, so it becomes 1.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got == 0:
		return 1
	}
	return got
}

// lockView is what the holder of a lock last learnt from Consul.
type lockView struct {
	keyFound    bool      // the leader key exists
	keySession  string    // the session holding the key, "" for none
	sessionGone bool      // a renewal or lookup said the session no longer exists
	lastContact time.Time // when Consul last answered
}

// lockLostReason says why the holder of session ours no longer leads, or
// "" while it does. Consul answering that the key belongs to another
// session or to none, that the key is gone, or that the session is gone
// each mean the session was invalidated (its health check failed, its TTL
// ran out, an operator destroyed it). Silence from Consul longer than
// lostAfter means the holder cannot know, so it must assume the worst
// before its TTL could expire.
func lockLostReason(ours string, v lockView, now time.Time, lostAfter time.Duration) string {
	switch {
	case v.sessionGone:
		return "session " + ours + " was invalidated"
	case !v.keyFound:
		return "leader key was deleted"
	case v.keySession == "":
		return "leader key was released"
	case v.keySession != ours:
		return "leader key is held by session " + v.keySession
	case now.Sub(v.lastContact) >= lostAfter:
		return "Consul unreachable for " + now.Sub(v.lastContact).Round(time.Millisecond).String()
	}
	return ""
}

// sameInstances reports whether two sets of instances, each in any order,
// are equal, so a watch does not wake its caller for a blocking query that
// returned without a change that matters.
func sameInstances(a, b []Instance) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = sortedInstances(a), sortedInstances(b)
	for i := range a {
		if !a[i].equal(b[i]) {
			return false
		}
	}
	return true
}

// sortedInstances returns a copy of in ordered by service ID, then node.
func sortedInstances(in []Instance) []Instance {
	out := slices.Clone(in)
	slices.SortFunc(out, func(x, y Instance) int {
		if c := strings.Compare(x.ID, y.ID); c != 0 {
			return c
		}
		return strings.Compare(x.Node, y.Node)
	})
	return out
}
