package metaserver

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// placeMargin is the free space a group must keep beyond an allocation's
// bytes to be chosen (one block), so writers that raced for the same group
// do not fill it to the last byte.
const placeMargin = wire.MaxBlockSize

// nearTie is how close (in parts per thousand of the best) a group's free
// space must be to the best to compete on load instead.
const nearTie = 50

// tracker is the embedded tracker: the chunkservers that heartbeat to this
// metaserver, grouped. Members are kept in memory; the core persists each
// member's identity so a restart still lists it (as unhealthy until its
// next heartbeat).
type tracker struct {
	timeout time.Duration

	mu      sync.Mutex
	members map[string]*trackedMember // by member ID
}

type trackedMember struct {
	m    wire.Member
	beat time.Time // last heartbeat received by this process; zero after a restart
}

func newTracker(timeout time.Duration) *tracker {
	return &tracker{timeout: timeout, members: make(map[string]*trackedMember)}
}

// restore adds a member read back from the database: known, not healthy.
func (t *tracker) restore(m wire.Member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m.Healthy = false
	t.members[m.ID] = &trackedMember{m: m}
}

// heartbeat records m as seen at now. It reports whether the member's
// identity (new member, new address or new group) changed, which the core
// persists, and the group it was in before (for a move).
func (t *tracker) heartbeat(m wire.Member, now time.Time) (changed bool, oldGroup uint32, moved bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m.LastSeen = now.UnixNano()
	m.Healthy = true
	old, ok := t.members[m.ID]
	switch {
	case !ok:
		changed = true
	case old.m.Group != m.Group:
		changed, oldGroup, moved = true, old.m.Group, true
	case old.m.Addr != m.Addr:
		changed = true
	}
	t.members[m.ID] = &trackedMember{m: m, beat: now}
	return changed, oldGroup, moved
}

// forget drops a member restored from disk or seen before; used to undo a
// heartbeat whose persistence failed.
func (t *tracker) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.members, id)
}

// groups lists every group with its members, Healthy computed at now;
// groups and members sorted by id.
func (t *tracker) groups(now time.Time) []wire.Group {
	t.mu.Lock()
	byGroup := make(map[uint32][]wire.Member)
	for _, tm := range t.members {
		m := tm.m
		m.Healthy = !tm.beat.IsZero() && now.Sub(tm.beat) <= t.timeout
		byGroup[m.Group] = append(byGroup[m.Group], m)
	}
	t.mu.Unlock()
	out := make([]wire.Group, 0, len(byGroup))
	for id, ms := range byGroup {
		slices.SortFunc(ms, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, wire.Group{ID: id, Members: ms})
	}
	slices.SortFunc(out, func(a, b wire.Group) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// known reports whether any member (healthy or not) is in group g.
func (t *tracker) known(g uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tm := range t.members {
		if tm.m.Group == g {
			return true
		}
	}
	return false
}

// healthyCount is the number of healthy members at now.
func (t *tracker) healthyCount(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, tm := range t.members {
		if !tm.beat.IsZero() && now.Sub(tm.beat) <= t.timeout {
			n++
		}
	}
	return n
}

// placement is the answer of place: a group and its healthy members,
// preferred first.
type placement struct {
	Group   uint32
	Members []string
}

// place chooses where bytes of new data go. Only groups with a healthy
// member qualify, and only if every healthy member has bytes+placeMargin
// free (a write must land on all of them). Among those, the group with the
// most free space wins (free of a group = its fullest healthy member);
// groups within nearTie of the best compete on load (sum of their healthy
// members' in-flight requests), then on free space, then on the lower id.
// Members come ordered by free space (desc), then load (asc), then id.
// No healthy member anywhere is ErrUnavailable; all too full is ErrNoSpace.
func place(groups []wire.Group, bytes uint64) (placement, error) {
	type cand struct {
		id      uint32
		free    uint64
		load    int
		members []wire.Member
	}
	var cands []cand
	healthy := 0
	need := bytes + placeMargin
	for _, g := range groups {
		c := cand{id: g.ID}
		fits := true
		for _, m := range g.Members {
			if !m.Healthy {
				continue
			}
			if len(c.members) == 0 || m.Free < c.free {
				c.free = m.Free
			}
			c.load += m.Load
			c.members = append(c.members, m)
			if m.Free < need {
				fits = false
			}
		}
		healthy += len(c.members)
		if len(c.members) > 0 && fits {
			cands = append(cands, c)
		}
	}
	if healthy == 0 {
		return placement{}, wire.Errorf(wire.ErrUnavailable, "no healthy chunkserver")
	}
	if len(cands) == 0 {
		return placement{}, wire.Errorf(wire.ErrNoSpace, "no group has %d bytes free", bytes)
	}
	var best uint64
	for _, c := range cands {
		best = max(best, c.free)
	}
	floor := best - best/1000*nearTie
	slices.SortFunc(cands, func(a, b cand) int {
		an, bn := a.free >= floor, b.free >= floor
		switch {
		case an != bn:
			if an {
				return -1
			}
			return 1
		case an && a.load != b.load:
			return cmp.Compare(a.load, b.load)
		case a.free != b.free:
			return cmp.Compare(b.free, a.free)
		}
		return cmp.Compare(a.id, b.id)
	})
	w := cands[0]
	// Members in id order: the first healthy one is the group's primary.
	// Until log shipping copies blocks to every member, a block lives on
	// the member it was written to; readers try members in the same (id)
	// order, so their first try finds it.
	slices.SortFunc(w.members, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
	p := placement{Group: w.id, Members: make([]string, len(w.members))}
	for i, m := range w.members {
		p.Members[i] = m.Addr
	}
	return p, nil
}

// statFS sums the capacity of groups with a healthy member; a group counts
// as much as its smallest healthy member, since every member holds every
// block of the group.
func statFS(groups []wire.Group, inodes uint64) wire.StatFS {
	st := wire.StatFS{Files: inodes, BSize: wire.MaxBlockSize}
	for _, g := range groups {
		var total, free uint64
		n := 0
		for _, m := range g.Members {
			if !m.Healthy {
				continue
			}
			if n == 0 || m.Capacity < total {
				total = m.Capacity
			}
			if n == 0 || m.Free < free {
				free = m.Free
			}
			n++
		}
		if n > 0 {
			st.Total += total
			st.Free += free
			st.Groups++
		}
	}
	return st
}

// ---- tracker ops of the core ----

// heartbeat records a chunkserver's report. A new member, or one with a new
// address or group, is persisted so a restart still lists it.
func (c *core) heartbeat(_ context.Context, m *wire.Member) error {
	switch {
	case m.ID == "" || len(m.ID) > 255:
		return errInval("member id %q", m.ID)
	case m.Addr == "" || len(m.Addr) > 255:
		return errInval("member address %q", m.Addr)
	}
	now := c.clock()
	changed, oldGroup, moved := c.tracker.heartbeat(*m, now)
	if !changed {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpHeartbeat)
	rec := *m
	rec.LastSeen = now.UnixNano()
	rec.Healthy = false
	t.b.Put(keyMember(m.Group, m.ID), encodeMember(rec))
	if moved {
		t.b.Delete(keyMember(oldGroup, m.ID))
	}
	if err := t.commit(); err != nil {
		c.tracker.forget(m.ID)
		return err
	}
	return nil
}

func (c *core) groups(_ context.Context) wire.GroupsReply {
	return wire.GroupsReply{Groups: c.tracker.groups(c.clock())}
}
