package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// Tuning of the metadata caches.
const (
	maxChunkEntries = 1 << 16          // cached chunk slice lists
	groupsMaxAge    = 10 * time.Second // group membership refresh interval
	groupsMinAge    = time.Second      // forced refreshes at most this often
	leaseIDs        = 64               // block ids asked for per lease
	leaseMaxAge     = 30 * time.Second // a lease's placement goes stale after this
)

// chunkKey names one chunk of one inode.
type chunkKey struct {
	ino uint64
	idx uint32
}

// chunkEntry is a chunk's committed slice list as read at version.
type chunkEntry struct {
	version uint64
	slices  []wire.Slice
}

// chunkCache caches committed slice lists. An entry read at version v is
// good for a reader that needs at least version v: versions only grow, and
// a reader's need is the version its inode was opened at or last
// committed, so close-to-open consistency holds without explicit drops.
type chunkCache struct {
	mu sync.Mutex // guards m
	m  map[chunkKey]chunkEntry
}

func newChunkCache() *chunkCache { return &chunkCache{m: make(map[chunkKey]chunkEntry)} }

func (cc *chunkCache) get(k chunkKey, minVersion uint64) ([]wire.Slice, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[k]
	if !ok || e.version < minVersion {
		return nil, false
	}
	return e.slices, true
}

func (cc *chunkCache) put(k chunkKey, e chunkEntry) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if old, ok := cc.m[k]; ok && old.version > e.version {
		return
	}
	if len(cc.m) >= maxChunkEntries {
		// Drop an eighth, arbitrarily (map order): cheap, and a dropped
		// entry costs one readchunk call.
		n := len(cc.m) / 8
		for key := range cc.m {
			delete(cc.m, key)
			if n--; n <= 0 {
				break
			}
		}
	}
	cc.m[k] = e
}

// chunkSlices returns the committed slice list of a chunk at version
// minVersion or later.
func (c *Client) chunkSlices(ctx context.Context, ino uint64, idx uint32, minVersion uint64) ([]wire.Slice, error) {
	k := chunkKey{ino, idx}
	if list, ok := c.chunks.get(k, minVersion); ok {
		return list, nil
	}
	var r wire.ReadChunkReply
	if err := c.call(ctx, wire.OpReadChunk, &wire.ReadChunkReq{Ino: ino, Index: idx}, &r); err != nil {
		return nil, err
	}
	c.chunks.put(k, chunkEntry{version: r.Version, slices: r.Slices})
	return r.Slices, nil
}

// groupCache maps group ids to member addresses, healthy members first.
type groupCache struct {
	refresh sync.Mutex // one OpGroups call at a time

	mu        sync.Mutex // guards members, preferred and at
	members   map[uint32][]string
	preferred map[uint32]int // the first n members of a group hold every acknowledged block
	at        time.Time
}

// readOrder returns a group's members in the order to read block id
// from: the in-sync healthy members first, starting at one chosen by the
// block id so reads spread over the copies, then the rest.
func (gc *groupCache) readOrder(group uint32, addrs []string, id uint64) []string {
	gc.mu.Lock()
	n := gc.preferred[group]
	gc.mu.Unlock()
	if n <= 1 || n > len(addrs) {
		return addrs
	}
	out := make([]string, 0, len(addrs))
	k := int(id % uint64(n))
	out = append(out, addrs[k:n]...)
	out = append(out, addrs[:k]...)
	return append(out, addrs[n:]...)
}

func newGroupCache() *groupCache { return &groupCache{} }

// members returns the addresses of group's members. force asks for fresh
// membership (after every member failed), at most once per groupsMinAge.
func (c *Client) members(ctx context.Context, group uint32, force bool) ([]string, error) {
	gc := c.groups
	gc.mu.Lock()
	m, ok := gc.members[group]
	age := time.Since(gc.at)
	seen := gc.at
	gc.mu.Unlock()
	if ok && age < groupsMaxAge && (!force || age < groupsMinAge) {
		return m, nil
	}
	gc.refresh.Lock()
	defer gc.refresh.Unlock()
	gc.mu.Lock()
	if gc.at.After(seen) { // someone refreshed while we waited
		m, ok = gc.members[group]
		gc.mu.Unlock()
		if ok {
			return m, nil
		}
		return nil, wire.Errorf(wire.ErrIO, "client: group %d is unknown to the metaserver", group)
	}
	gc.mu.Unlock()
	if _, err := c.Groups(ctx); err != nil {
		if ok { // stale membership beats none
			return m, nil
		}
		return nil, err
	}
	gc.mu.Lock()
	m, ok = gc.members[group]
	gc.mu.Unlock()
	if !ok {
		return nil, wire.Errorf(wire.ErrIO, "client: group %d is unknown to the metaserver", group)
	}
	return m, nil
}

// setGroups records a fresh OpGroups answer.
func (gc *groupCache) set(groups []wire.Group) {
	m := make(map[uint32][]string, len(groups))
	pref := make(map[uint32]int, len(groups))
	for _, g := range groups {
		addrs := make([]string, 0, len(g.Members))
		// In-sync and healthy (holds every acknowledged block), healthy
		// (may be catching up), then the rest.
		for rank := 0; rank < 3; rank++ {
			for _, mb := range g.Members {
				r := 2
				switch {
				case mb.Healthy && mb.InSync:
					r = 0
				case mb.Healthy:
					r = 1
				}
				if r == rank {
					addrs = append(addrs, mb.Addr)
				}
			}
			if rank == 0 {
				pref[g.ID] = len(addrs)
			}
		}
		m[g.ID] = addrs
	}
	gc.mu.Lock()
	gc.members, gc.preferred, gc.at = m, pref, time.Now()
	gc.mu.Unlock()
}

// lease is a range of block ids and where to put their blocks.
type lease struct {
	next, end uint64 // ids [next, end) are unused
	group     uint32
	members   []string
	at        time.Time
	gen       uint64 // identifies the lease, so a NOSPACE drops only the lease it hit
}

// leaser hands out block ids from the current lease.
type leaser struct {
	mu  sync.Mutex // guards the fields below; held across the alloc call
	cur lease
	gen uint64
	// err is the failure of the last alloc call (after its retries) and
	// errAt when it ended. A caller that was already waiting for mu then
	// shares that failure instead of retrying for another RetryTimeout:
	// with many uploads queued, a dead metaserver would otherwise cost
	// one timeout per queued block.
	err   error
	errAt time.Time
}

// blockTarget is one block id and the placement to PUT it to.
type blockTarget struct {
	id      uint64
	group   uint32
	members []string
	gen     uint64
}

// nextID takes an id from the lease, asking the metaserver for a new lease
// when it is used up or stale. A NOSPACE from the metaserver comes back
// as wire.ErrNoSpace.
func (c *Client) nextID(ctx context.Context, bytes int) (blockTarget, error) {
	l := &c.lease
	asked := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := c.leaseLocked(ctx, bytes, asked); err != nil {
		return blockTarget{}, err
	}
	t := blockTarget{id: l.cur.next, group: l.cur.group, members: l.cur.members, gen: l.cur.gen}
	l.cur.next++
	return t, nil
}

// leaseLocked makes sure the current lease has an unused id and is fresh,
// asking the metaserver for a new one otherwise; c.lease.mu held. A
// caller that started waiting (asked) before the last alloc failed shares
// that failure. Every answer updates what the client knows about the
// cluster's space (noteSpace).
func (c *Client) leaseLocked(ctx context.Context, bytes int, asked time.Time) error {
	l := &c.lease
	if l.cur.next < l.cur.end && time.Since(l.cur.at) <= leaseMaxAge {
		return nil
	}
	if l.err != nil && !asked.After(l.errAt) {
		return l.err
	}
	var r wire.AllocReply
	req := wire.AllocReq{Count: leaseIDs, Bytes: int64(bytes)}
	if err := c.call(ctx, wire.OpAlloc, &req, &r); err != nil {
		if ctx.Err() == nil {
			l.err, l.errAt = err, time.Now()
		}
		if errors.Is(err, wire.ErrNoSpace) {
			c.noteSpace(false)
		}
		return err
	}
	l.err = nil
	if r.Count < 1 || r.First == 0 || len(r.Members) == 0 {
		return wire.Errorf(wire.ErrIO, "client: alloc answered an empty lease (first %d, %d ids, %d members)",
			r.First, r.Count, len(r.Members))
	}
	c.noteSpace(true)
	l.gen++
	l.cur = lease{next: r.First, end: r.First + uint64(r.Count), group: r.Group, members: r.Members, at: time.Now(), gen: l.gen}
	return nil
}

// dropLease forgets lease gen (a member said NOSPACE or all failed), so
// the next id comes with a fresh placement.
func (c *Client) dropLease(gen uint64) {
	l := &c.lease
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur.gen == gen {
		l.cur = lease{}
	}
}
