package metaserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/internal/blockclient"
	"github.com/reelfs/reelfs/internal/wire"
)

const (
	// drainBatch is the most queue entries one drain round looks at.
	drainBatch = 4096
	// drainParallel bounds the DELETEs in flight.
	drainParallel = 8
	// maxBackoff caps the retry delay of a block whose delete failed.
	maxBackoff = 5 * time.Minute
	// listPage is the page size of a chunkserver inventory listing.
	listPage = 1000
	// trimBatch is the most op-log entries one trim batch deletes.
	trimBatch = 10000
	// peerTimeout bounds one request to a chunkserver.
	peerTimeout = 10 * time.Second
)

// collector runs the garbage collection against the chunkservers: it
// drains the deletion queue, finds uploads that were never committed, and
// trims the op log.
type collector struct {
	c      *core
	blocks *blockclient.Client
	log    *slog.Logger
	grace  time.Duration // age of an uncommitted upload before it is collected
	keep   uint64        // op-log entries to keep
	// leader reports whether this metaserver may change the namespace
	// (always, without failover).
	leader func() bool
	// epoch is the epoch block deletes are sent under (0 without
	// failover).
	epoch func() uint64

	// mu guards retry: per block, when it may next be tried and how many
	// rounds failed.
	mu    sync.Mutex
	retry map[uint64]retryState
}

type retryState struct {
	next     time.Time
	failures int
}

func newCollector(c *core, secret string, grace time.Duration, keep int, log *slog.Logger) *collector {
	return &collector{
		c:      c,
		log:    log,
		grace:  grace,
		keep:   uint64(keep),
		leader: func() bool { return true },
		epoch:  func() uint64 { return 0 },
		retry:  make(map[uint64]retryState),
		blocks: blockclient.New(blockclient.Config{
			Name: "reelfs-metaserver", Secret: secret, Timeout: peerTimeout, MaxBody: wire.MaxRPCBody,
		}),
	}
}

type queued struct {
	id    uint64
	group uint32
}

// drain makes one pass over the deletion queue: every due block is deleted
// on every member of its group; a block all members answered 2xx or 404
// for leaves the queue, any other answer retries it later with backoff.
// It returns the number of blocks that left the queue.
func (g *collector) drain(ctx context.Context) (int, error) {
	now := g.c.clock()
	var due []queued
	it := g.c.db.NewIterator(util.BytesPrefix([]byte{pQueue}), nil)
	for it.Next() && len(due) < drainBatch {
		k := it.Key()
		grp, err := decodeU32(it.Value())
		if len(k) != 9 || err != nil {
			g.log.Error("bad deletion-queue entry", "key", fmt.Sprintf("%x", k))
			continue
		}
		id := binary.BigEndian.Uint64(k[1:])
		g.mu.Lock()
		r, ok := g.retry[id]
		g.mu.Unlock()
		if ok && now.Before(r.next) {
			continue
		}
		due = append(due, queued{id: id, group: grp})
	}
	it.Release()
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("metaserver: read deletion queue: %w", err)
	}
	if len(due) == 0 {
		return 0, nil
	}
	// Deletes go to the healthy members. A member that is down gets them
	// from its peers' binlogs when it returns, so the queue does not wait
	// for it, unless no healthy member held the block: then no binlog
	// carries the delete (a chunkserver logs only deletes of blocks it
	// had), and the block may be on the member that is down alone (a PUT
	// that reached it and failed before it replicated). Such a block
	// waits for that member to come back or be removed (rmmember); left
	// to the collector of unreferenced blocks it would stay for the
	// upload grace, its group's members listing different inventories.
	members := make(map[uint32][]string)
	down := make(map[uint32][]string)
	for _, grp := range g.c.tracker.groups(now) {
		for _, m := range grp.Members {
			if m.Healthy {
				members[grp.ID] = append(members[grp.ID], m.Addr)
			} else {
				down[grp.ID] = append(down[grp.ID], m.ID)
			}
		}
	}

	var (
		mu   sync.Mutex
		done []uint64
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(drainParallel)
	for _, q := range due {
		eg.Go(func() error {
			addrs := members[q.group]
			held, err := g.deleteEverywhere(ectx, q.id, addrs)
			if err != nil {
				g.failed(q.id, now, err)
				return nil
			}
			if !held && len(down[q.group]) > 0 {
				g.waiting(q.id, now, down[q.group])
				return nil
			}
			mu.Lock()
			done = append(done, q.id)
			mu.Unlock()
			return nil
		})
	}
	eg.Wait()
	if len(done) == 0 {
		return 0, ctx.Err()
	}
	if err := g.c.dequeue(done); err != nil {
		return 0, err
	}
	g.mu.Lock()
	for _, id := range done {
		delete(g.retry, id)
	}
	g.mu.Unlock()
	return len(done), ctx.Err()
}

// failed schedules the next try of a block with exponential backoff.
func (g *collector) failed(id uint64, now time.Time, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.retry[id]
	r.failures++
	d := time.Second << min(r.failures-1, 20)
	r.next = now.Add(min(d, maxBackoff))
	g.retry[id] = r
	if r.failures == 1 || r.failures%10 == 0 {
		g.log.Warn("block delete failed; will retry", "block", wire.BlockName(id), "failures", r.failures, "err", err)
	}
}

// waiting schedules the next try of a block that only a member that is
// down may hold, with the backoff of a failed one but without a warning
// (it is the normal course of a member's absence).
func (g *collector) waiting(id uint64, now time.Time, down []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.retry[id]
	r.failures++
	d := time.Second << min(r.failures-1, 20)
	r.next = now.Add(min(d, maxBackoff))
	g.retry[id] = r
	if r.failures == 1 {
		g.log.Debug("block held by no healthy member: delete waits for the members that are down",
			"block", wire.BlockName(id), "down", down)
	}
}

// deleteEverywhere deletes block id on every address; 2xx and 404 count as
// done, and held reports whether any address had the block (answered
// 2xx). A group with no healthy member cannot be drained yet.
func (g *collector) deleteEverywhere(ctx context.Context, id uint64, addrs []string) (held bool, err error) {
	if len(addrs) == 0 {
		return false, wire.Errorf(wire.ErrUnavailable, "no healthy member of the block's group")
	}
	for _, addr := range addrs {
		had, err := g.deleteBlock(ctx, addr, id)
		if err != nil {
			return held, err
		}
		held = held || had
	}
	return held, nil
}

// deleteBlock deletes block id on addr; had is false when addr did not
// hold it (404).
func (g *collector) deleteBlock(ctx context.Context, addr string, id uint64) (had bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	err = g.blocks.DeleteEpoch(ctx, addr, id, g.epoch())
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, wire.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("delete %s on %s: %w", wire.BlockName(id), addr, err)
}

// dequeue drops delivered blocks from the deletion queue in one batch.
func (c *core) dequeue(ids []uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin("dequeue")
	n := 0
	for _, id := range ids {
		_, ok, err := getOpt(c.db, keyQueue(id))
		if err != nil {
			return ioError("dequeue", err)
		}
		if !ok {
			continue
		}
		t.b.Delete(keyQueue(id))
		if t.ctr.queued > 0 {
			t.ctr.queued--
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return t.commit()
}

// collectUploads lists every healthy chunkserver's blocks older than the
// grace period and queues for deletion those that no chunk references,
// that were leased (an id at or past the high-water mark is not ours to
// judge) and that no live session reports as its upload awaiting commit.
// A block counts as old only past the session TTL too: a live client
// reports a new upload within one keep-alive, which comes within the TTL.
// It returns the number of blocks queued.
func (g *collector) collectUploads(ctx context.Context) (int, error) {
	now := g.c.clock()
	before := now.Add(-max(g.grace, g.c.ttl)).UnixNano()
	total := 0
	for _, grp := range g.c.tracker.groups(now) {
		for _, m := range grp.Members {
			if !m.Healthy {
				continue
			}
			n, err := g.collectMember(ctx, m, before)
			total += n
			if err != nil {
				if ctx.Err() != nil {
					return total, ctx.Err()
				}
				g.log.Warn("uncommitted-upload scan failed", "member", m.ID, "addr", m.Addr, "err", err)
			}
		}
	}
	return total, nil
}

func (g *collector) collectMember(ctx context.Context, m wire.Member, before int64) (int, error) {
	total := 0
	var after uint64
	for {
		page, err := g.listBlocks(ctx, m.Addr, after, before)
		if err != nil {
			return total, err
		}
		var cands []uint64
		prev := after
		for _, b := range page.Blocks {
			if b.ID != 0 && b.Mtime < before {
				cands = append(cands, b.ID)
			}
			after = max(after, b.ID)
		}
		n, err := g.c.queueUnreferenced(cands, m.Group)
		total += n
		if err != nil {
			return total, err
		}
		if !page.More || after == prev { // done, or a server that does not advance
			return total, nil
		}
	}
}

func (g *collector) listBlocks(ctx context.Context, addr string, after uint64, before int64) (wire.BlockList, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	return g.blocks.List(ctx, addr, after, listPage, before)
}

// queueUnreferenced queues those of ids that were leased, are in no chunk,
// are not queued yet and are no live session's upload awaiting commit.
// Holding c.mu makes the check and the queueing atomic with respect to
// commits and keep-alives; commits refuse tombstoned blocks. For one
// session TTL after a start it queues nothing: the sessions, and with
// them the uploads they hold, live in memory, and every live client
// reports its uploads again within that time.
func (c *core) queueUnreferenced(ids []uint64, group uint32) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clock().Sub(c.started) <= c.ttl {
		return 0, nil
	}
	held := c.heldUploads()
	t := c.begin("uploadgc")
	n := 0
	for _, id := range ids {
		if id >= t.ctr.nextBlock || inRanges(held, id) {
			continue
		}
		_, ref, err := getOpt(c.db, keyBlock(id))
		if err != nil {
			return 0, ioError("upload gc", err)
		}
		_, q, err := getOpt(c.db, keyQueue(id))
		if err != nil {
			return 0, ioError("upload gc", err)
		}
		if ref || q {
			continue
		}
		t.queueBlock(id, group)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := t.commit(); err != nil {
		return 0, err
	}
	c.log.Info("queued uncommitted uploads", "blocks", n, "group", group)
	return n, nil
}

// trimLog deletes op-log entries older than the last keep, in batches. The
// keys it deletes are disjoint from any a mutation writes, so it runs
// without c.mu.
func (g *collector) trimLog(ctx context.Context) (int, error) {
	c := g.c
	if g.leader() {
		if _, err := c.trimRequests(c.clock()); err != nil {
			return 0, err
		}
	}
	c.mu.Lock()
	last := c.ctr.seq
	c.mu.Unlock()
	if last < g.keep {
		return 0, nil
	}
	limit := last - g.keep + 1 // keep seqs >= limit
	trimmed := 0
	for first := c.firstSeq.Load(); first < limit; first = c.firstSeq.Load() {
		if err := ctx.Err(); err != nil {
			return trimmed, err
		}
		end := min(limit, first+trimBatch)
		var b leveldb.Batch
		for seq := first; seq < end; seq++ {
			b.Delete(keyLog(seq))
		}
		if err := c.db.Write(&b, nil); err != nil {
			return trimmed, fmt.Errorf("metaserver: trim op log: %w", err)
		}
		trimmed += int(end - first)
		c.firstSeq.Store(end)
	}
	return trimmed, nil
}
