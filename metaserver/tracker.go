package metaserver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	rules   isrRules
	rotate  atomic.Uint64 // spreads PUTs over a group's members

	crules consulRules

	mu       sync.Mutex
	members  map[string]*trackedMember // by member ID
	isr      map[uint32]isrRecord      // by group; persisted under keyISR
	consul   consulView                // Consul's health checks, when configured
	fellBack bool                      // the Consul view fell back to heartbeats (logged once per outage)
}

// isrRecord is a group's in-sync set as stored: changed only by
// core.updateISR, each change with a new version.
type isrRecord struct {
	Version uint64   `json:"v"`
	Members []string `json:"isr"`
}

type trackedMember struct {
	m    wire.Member
	beat time.Time // last heartbeat received by this process; zero after a restart
}

func newTracker(timeout time.Duration, rules isrRules) *tracker {
	return &tracker{timeout: timeout, rules: rules, members: make(map[string]*trackedMember),
		isr: make(map[uint32]isrRecord)}
}

// reset forgets every member and in-sync set, before the core reloads
// them from the database (a follower becoming leader).
func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.members = make(map[string]*trackedMember)
	t.isr = make(map[uint32]isrRecord)
}

// useConsul makes Consul's health checks a condition of health.
func (t *tracker) useConsul(r consulRules) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.crules = r
	t.consul.on = true
}

// healthy is whether tm counts as healthy at now: it heartbeats (within
// the timeout), says it is healthy (binlog and statfs work), and, with
// Consul, its check passes (consulHealthy). t.mu must be held.
func (t *tracker) healthy(tm *trackedMember, now time.Time) bool {
	if !tm.m.Healthy || tm.beat.IsZero() || now.Sub(tm.beat) > t.timeout {
		return false
	}
	ok, _ := consulHealthy(t.consul, tm.m.ID, now, t.crules)
	return ok
}

// restoreISR sets a group's in-sync set read back from the database.
func (t *tracker) restoreISR(group uint32, rec isrRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.isr[group] = rec
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
	m.InSync = false
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

// forget drops a member restored from disk or seen before: to undo a
// heartbeat whose persistence failed, and when an operator removes it.
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
		m.Healthy = t.healthy(tm, now)
		byGroup[m.Group] = append(byGroup[m.Group], m)
	}
	isr := make(map[uint32]isrRecord, len(t.isr))
	for g, rec := range t.isr {
		isr[g] = rec
	}
	t.mu.Unlock()
	out := make([]wire.Group, 0, len(byGroup))
	for id, ms := range byGroup {
		slices.SortFunc(ms, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
		rec := isr[id]
		for i := range ms {
			ms[i].InSync = slices.Contains(rec.Members, ms[i].ID)
		}
		out = append(out, wire.Group{ID: id, Members: ms, ISR: rec.Members, ISRVersion: rec.Version,
			MinCopies: minCopiesOf(ms)})
	}
	slices.SortFunc(out, func(a, b wire.Group) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// group is group g as groups reports it (empty when no member is known).
func (t *tracker) group(g uint32, now time.Time) wire.Group {
	for _, grp := range t.groups(now) {
		if grp.ID == g {
			return grp
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.isr[g]
	return wire.Group{ID: g, ISR: rec.Members, ISRVersion: rec.Version}
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
		if t.healthy(tm, now) {
			n++
		}
	}
	return n
}

// placement is the answer of place: a group and the in-sync members a
// client may PUT to, in the order to try them.
type placement struct {
	Group   uint32
	Members []string
}

// place chooses where bytes of new data go. A group qualifies when its
// writable in-sync members are at least its min-copies (a PUT is
// acknowledged only once all of them hold the block) and each has
// bytes+placeMargin free. Among those, the group with the most free space
// wins (free of a group = its fullest in-sync member); groups within
// nearTie of the best compete on load (the sum of their in-sync members'
// requests in flight), then on free space, then on the lower id. Any
// in-sync member takes a PUT and replicates it: the member list starts at
// an offset that turns with every placement (turn), spreading the load.
// No healthy member anywhere is ErrUnavailable; all too full, or no group
// with enough in-sync members, is ErrNoSpace naming the cause.
func place(groups []wire.Group, bytes uint64, turn uint64) (placement, error) {
	type cand struct {
		id      uint32
		free    uint64
		load    int
		members []wire.Member
	}
	var cands []cand
	var problems []string
	healthy := 0
	need := bytes + placeMargin
	for _, g := range groups {
		c := cand{id: g.ID}
		fits := true
		for _, m := range g.Members {
			if m.Healthy {
				healthy++
			}
			if !writable(m) || !slices.Contains(g.ISR, m.ID) {
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
		if p := quorumProblem(g); p != "" {
			problems = append(problems, p)
			continue
		}
		if !fits {
			problems = append(problems, fmt.Sprintf("group %d has less than %d bytes free", g.ID, need))
			continue
		}
		cands = append(cands, c)
	}
	if healthy == 0 {
		return placement{}, wire.Errorf(wire.ErrUnavailable, "no healthy chunkserver")
	}
	if len(cands) == 0 {
		return placement{}, wire.Errorf(wire.ErrNoSpace, "no group can take %d bytes: %s", bytes, strings.Join(problems, "; "))
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
	slices.SortFunc(w.members, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
	p := placement{Group: w.id, Members: make([]string, len(w.members))}
	for i := range w.members {
		p.Members[i] = w.members[(i+int(turn%uint64(len(w.members))))%len(w.members)].Addr
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

// heartbeat records a chunkserver's report and answers with its group as
// the tracker sees it (peers and in-sync set), after re-deciding that
// group's in-sync set with the report. A new member, or one with a new
// address or group, is persisted so a restart still lists it.
func (c *core) heartbeat(_ context.Context, m *wire.Member) (wire.HeartbeatReply, error) {
	switch {
	case m.ID == "" || len(m.ID) > 255:
		return wire.HeartbeatReply{}, errInval("member id %q", m.ID)
	case m.Addr == "" || len(m.Addr) > 255:
		return wire.HeartbeatReply{}, errInval("member address %q", m.Addr)
	case m.Group == 0:
		return wire.HeartbeatReply{}, errInval("member %s: group 0", m.ID)
	}
	now := c.clock()
	changed, oldGroup, moved := c.tracker.heartbeat(*m, now)
	if changed {
		if err := c.persistMember(*m, now, oldGroup, moved); err != nil {
			return wire.HeartbeatReply{}, err
		}
	}
	if moved {
		if _, err := c.updateISR(oldGroup); err != nil {
			return wire.HeartbeatReply{}, err
		}
	}
	g, err := c.updateISR(m.Group)
	if err != nil {
		return wire.HeartbeatReply{}, err
	}
	return wire.HeartbeatReply{Group: g}, nil
}

func (c *core) persistMember(m wire.Member, now time.Time, oldGroup uint32, moved bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpHeartbeat)
	rec := m
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

// updateISR re-decides group g's in-sync set (decideISR) and, when it
// changed, stores the new set with a new version before anyone can see
// it. It returns the group as the tracker sees it afterwards. c.mu
// serializes the decisions, so versions never fork.
func (c *core) updateISR(g uint32) (wire.Group, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	grp := c.tracker.group(g, now)
	if c.follower.Load() {
		// Only the leader decides (and logs) in-sync sets.
		return grp, nil
	}
	d := decideISR(now, grp.Members, grp.ISR, c.tracker.rules)
	if !d.Changed {
		return grp, nil
	}
	if now.Sub(c.started) < c.tracker.timeout && c.tracker.removesUnheard(grp.ISR, d.ISR) {
		// Just started (or just became leader): members have had no time
		// to heartbeat here yet, so "unhealthy" means "not heard from".
		// Joins may go ahead; removals wait for the first timeout.
		return grp, nil
	}
	rec := isrRecord{Version: grp.ISRVersion + 1, Members: d.ISR}
	val, err := json.Marshal(rec)
	if err != nil {
		return grp, err
	}
	t := c.begin("isr")
	t.b.Put(keyISR(g), val)
	if err := t.commit(); err != nil {
		return grp, err
	}
	c.tracker.restoreISR(g, rec)
	c.log.Info("in-sync set changed", "group", g, "isr", d.ISR, "version", rec.Version,
		"was", grp.ISR, "why", strings.Join(d.Why, "; "))
	return c.tracker.group(g, now), nil
}

// removesUnheard reports whether next lacks a member of isr that this
// process has not heard a heartbeat from yet.
func (t *tracker) removesUnheard(isr, next []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range isr {
		if slices.Contains(next, id) {
			continue
		}
		if tm, ok := t.members[id]; ok && tm.beat.IsZero() {
			return true
		}
	}
	return false
}

// unheard reports whether some known member has not heartbeated to this
// process yet.
func (t *tracker) unheard() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tm := range t.members {
		if tm.beat.IsZero() {
			return true
		}
	}
	return false
}

// refreshISR re-decides every group's in-sync set; the GC loop calls it so
// a group whose members all went silent is still judged.
func (c *core) refreshISR(_ context.Context) error {
	for _, g := range c.tracker.groups(c.clock()) {
		if _, err := c.updateISR(g.ID); err != nil {
			return err
		}
	}
	return nil
}

// removeMember forgets a member (an operator retiring a dead disk): it
// leaves the tracker, the stored member list and the in-sync set, so the
// deletion queue and placement stop waiting for it.
func (c *core) removeMember(_ context.Context, req *wire.RemoveMemberReq) error {
	if req.ID == "" || req.Group == 0 {
		return errInval("remove member: want a group and a member id")
	}
	members := c.tracker.group(req.Group, c.clock()).Members
	if !slices.ContainsFunc(members, func(m wire.Member) bool { return m.ID == req.ID }) {
		return wire.Errorf(wire.ErrNotFound, "metaserver: group %d has no member %q", req.Group, req.ID)
	}
	c.mu.Lock()
	t := c.begin(wire.OpRemoveMember)
	t.b.Delete(keyMember(req.Group, req.ID))
	err := t.commit()
	if err == nil {
		c.tracker.forget(req.ID)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.log.Info("member removed by request", "group", req.Group, "member", req.ID)
	_, err = c.updateISR(req.Group)
	return err
}

func (c *core) groups(_ context.Context) wire.GroupsReply {
	return wire.GroupsReply{Groups: c.tracker.groups(c.clock())}
}
