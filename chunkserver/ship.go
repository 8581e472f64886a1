package chunkserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/internal/blockclient"
	"github.com/reelfs/reelfs/internal/wire"
)

// offsetsFile holds, per peer id, the next seq of its binlog to fetch.
const offsetsFile = "replica.json"

// Shipping pacing.
const (
	shipBackoffMin = 100 * time.Millisecond
	shipBackoffMax = 5 * time.Second
	// offsetsEvery bounds how often the offsets file is rewritten. A
	// crash loses at most this much progress, which is re-applied (puts
	// of blocks already held are skipped).
	offsetsEvery = time.Second
)

// offsetsRecord is the stored form of the shipper's offsets.
type offsetsRecord struct {
	Peers map[string]uint64 `json:"peers"`
}

// shipper follows every peer's binlog: it pulls each new block, verifies
// and stores it, applies deletes, and asks for the next entries; the next
// fetch's from is the acknowledgement its source waits for. One follow
// goroutine runs per peer, started and stopped as the tracker's view of
// the group changes. See the package documentation.
type shipper struct {
	s      *Server
	blocks *blockclient.Client
	path   string

	mu      sync.Mutex // guards the fields below
	offsets map[string]uint64
	dirty   bool
	sources map[string]*wire.Source
	running map[string]*follow
	viewCh  chan struct{} // signalled when the view changes
}

// follow is one running follower of a peer.
type follow struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

func newShipper(s *Server) (*shipper, error) {
	sh := &shipper{
		s: s,
		blocks: blockclient.New(blockclient.Config{
			Name: "reelfs-chunkserver", Secret: s.cfg.Secret, Timeout: readTimeout,
		}),
		path:    filepath.Join(s.cfg.Dir, offsetsFile),
		offsets: make(map[string]uint64),
		sources: make(map[string]*wire.Source),
		running: make(map[string]*follow),
		viewCh:  make(chan struct{}, 1),
	}
	b, err := os.ReadFile(sh.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("chunkserver: read %s: %w", sh.path, err)
	default:
		var rec offsetsRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			// A damaged offsets file costs a resync, never data.
			s.log.Warn("replication offsets unreadable; every peer will be resynced by inventory", "path", sh.path, "err", err)
		}
		for id, next := range rec.Peers {
			sh.offsets[id] = next
		}
	}
	return sh, nil
}

// viewChanged tells run to reconcile its followers with the new view.
func (sh *shipper) viewChanged() {
	select {
	case sh.viewCh <- struct{}{}:
	default:
	}
}

// run starts and stops follow goroutines as the view changes and saves
// the offsets, until ctx ends; then it stops every follower and saves
// the offsets once more.
func (sh *shipper) run(ctx context.Context) {
	tick := time.NewTicker(offsetsEvery)
	defer tick.Stop()
	for {
		sh.reconcile(ctx)
		select {
		case <-ctx.Done():
			sh.stopAll()
			sh.save()
			return
		case <-sh.viewCh:
		case <-tick.C:
			sh.save()
		}
	}
}

// reconcile runs one follower per peer of the current view.
func (sh *shipper) reconcile(ctx context.Context) {
	v := sh.s.followers.currentView()
	want := make(map[string]string, len(v.peers))
	for _, p := range v.peers {
		want[p.id] = p.addr
	}
	sh.mu.Lock()
	var stop []*follow
	for id, f := range sh.running {
		if addr, ok := want[id]; !ok || addr != f.addr {
			stop = append(stop, f)
			delete(sh.running, id)
			if !ok {
				delete(sh.sources, id)
			}
		}
	}
	for id, addr := range want {
		if _, ok := sh.running[id]; ok {
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		f := &follow{addr: addr, cancel: cancel, done: make(chan struct{})}
		sh.running[id] = f
		if sh.sources[id] == nil {
			sh.sources[id] = &wire.Source{ID: id}
		}
		go func() {
			defer close(f.done)
			sh.follow(fctx, peer{id: id, addr: addr})
		}()
	}
	sh.mu.Unlock()
	for _, f := range stop {
		f.cancel()
		<-f.done
	}
}

func (sh *shipper) stopAll() {
	sh.mu.Lock()
	all := make([]*follow, 0, len(sh.running))
	for id, f := range sh.running {
		all = append(all, f)
		delete(sh.running, id)
	}
	sh.mu.Unlock()
	for _, f := range all {
		f.cancel()
		<-f.done
	}
}

// save writes the offsets file (temp, fsync, rename) if it changed.
func (sh *shipper) save() {
	sh.mu.Lock()
	if !sh.dirty {
		sh.mu.Unlock()
		return
	}
	rec := offsetsRecord{Peers: make(map[string]uint64, len(sh.offsets))}
	for id, n := range sh.offsets {
		rec.Peers[id] = n
	}
	sh.dirty = false
	sh.mu.Unlock()
	b, _ := json.Marshal(rec)
	tmp := sh.path + ".tmp"
	err := writeFileSync(tmp, b)
	if err == nil {
		err = os.Rename(tmp, sh.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(sh.path))
	}
	if err != nil {
		sh.s.log.Warn("saving replication offsets failed; a restart re-applies more of the peers' logs", "err", err)
		sh.mu.Lock()
		sh.dirty = true
		sh.mu.Unlock()
	}
}

func (sh *shipper) offset(id string) (uint64, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n, ok := sh.offsets[id]
	return n, ok
}

func (sh *shipper) setOffset(id string, next uint64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.offsets[id] = next
	sh.dirty = true
	if src := sh.sources[id]; src != nil {
		src.Next = next
	}
}

// source updates the status of peer id under the lock.
func (sh *shipper) source(id string, fn func(*wire.Source)) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if src := sh.sources[id]; src != nil {
		fn(src)
	}
}

// report lists this member's progress on each peer's binlog.
func (sh *shipper) report() []wire.Source {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]wire.Source, 0, len(sh.sources))
	for id, src := range sh.sources {
		r := *src
		if n, ok := sh.offsets[id]; ok {
			r.Next = n
		}
		out = append(out, r)
	}
	return out
}

// follow tails peer p's binlog until ctx ends: fetch from the saved
// offset (resyncing by inventory when there is none, the peer's log was
// trimmed past it, or the peer's log went back), apply the entries, move
// the offset. Failures are retried with backoff; nothing is skipped.
func (sh *shipper) follow(ctx context.Context, p peer) {
	cfg := sh.s.cfg
	wait := backoffWait{min: shipBackoffMin, max: shipBackoffMax}
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		sh.source(p.id, func(s *wire.Source) { s.Err = err.Error() })
		if wait.failures == 0 {
			sh.s.log.Warn("replication from peer failing; retrying", "peer", p.id, "addr", p.addr, "err", err)
		}
		sh.s.metrics.shipErrors.Inc()
		return wait.sleep(ctx)
	}
	for ctx.Err() == nil {
		next, ok := sh.offset(p.id)
		if !ok {
			if err := sh.resync(ctx, p, "no saved offset (new member or new peer)"); err != nil && !fail(err) {
				return
			}
			continue
		}
		reply, err := sh.blocks.Binlog(ctx, p.addr, next, cfg.ShipBatch, cfg.ShipWait, sh.s.id)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		sh.source(p.id, func(s *wire.Source) { s.Last = reply.Last })
		switch {
		case next < reply.First:
			if err := sh.resync(ctx, p, fmt.Sprintf("peer's binlog starts at %d, past our offset %d", reply.First, next)); err != nil && !fail(err) {
				return
			}
			continue
		case reply.Last+1 < next:
			if err := sh.resync(ctx, p, fmt.Sprintf("peer's binlog ends at %d, before our offset %d (a new disk?)", reply.Last, next)); err != nil && !fail(err) {
				return
			}
			continue
		}
		if len(reply.Entries) == 0 {
			continue
		}
		if err := sh.apply(ctx, p, reply.Entries); err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		if wait.failures > 0 {
			sh.s.log.Info("replication from peer recovered", "peer", p.id)
			sh.source(p.id, func(s *wire.Source) { s.Err = "" })
		}
		wait.failures = 0
		sh.setOffset(p.id, reply.Entries[len(reply.Entries)-1].Seq+1)
	}
}

// apply applies a page of a peer's entries in order. Runs of puts of
// distinct blocks are copied concurrently (cfg.ShipParallel); a delete,
// or a second entry for a block in the run, waits for the run before it.
func (sh *shipper) apply(ctx context.Context, p peer, entries []wire.BinlogEntry) error {
	for i := 0; i < len(entries); {
		e := entries[i]
		if e.Op == wire.BinlogDelete {
			if err := sh.applyDelete(ctx, e.ID); err != nil {
				return err
			}
			i++
			continue
		}
		j := i
		seen := make(map[uint64]bool)
		for j < len(entries) && entries[j].Op == wire.BinlogPut && !seen[entries[j].ID] {
			seen[entries[j].ID] = true
			j++
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(sh.s.cfg.ShipParallel)
		for _, e := range entries[i:j] {
			g.Go(func() error { return sh.applyPut(gctx, p, e) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// applyDelete removes a block a peer deleted; absent is fine.
func (sh *shipper) applyDelete(ctx context.Context, id uint64) error {
	sh.s.tombs.add(id)
	err := sh.s.store.Delete(ctx, id)
	if err != nil && !errors.Is(err, wire.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", wire.BlockName(id), err)
	}
	if err == nil {
		sh.s.metrics.shippedDeletes.Inc()
	}
	return nil
}

// applyPut copies block e.ID from peer p unless this member holds it or
// deleted it. A block the peer no longer has was deleted after the put
// (its delete follows in the log) or its put was never acknowledged
// (see the write protocol): either way there is nothing to copy.
func (sh *shipper) applyPut(ctx context.Context, p peer, e wire.BinlogEntry) error {
	_, err := sh.copyBlock(ctx, p, e.ID, e.Size, time.Unix(0, e.Time))
	return err
}

// copyBlock fetches block id from p (then, on a bad copy there, from the
// other peers) and stores it. It returns the bytes stored (0 when there
// was nothing to do). A block no member has a good copy of is retried
// (the entry is not acknowledged, so a PUT waiting for it is not
// answered) until the entry, logged at logged, is older than twice the
// ack timeout: by then its PUT has failed, and the follower moves on
// instead of stalling on it forever. A zero logged (an inventory resync)
// moves on at once.
func (sh *shipper) copyBlock(ctx context.Context, p peer, id uint64, size uint32, logged time.Time) (int, error) {
	if _, err := sh.s.store.Stat(ctx, id); err == nil {
		return 0, nil
	}
	if sh.s.tombs.has(id) {
		return 0, nil
	}
	data, err := sh.blocks.GetBlock(ctx, p.addr, id, size)
	switch {
	case errors.Is(err, wire.ErrNotFound):
		return 0, nil
	case errors.Is(err, wire.ErrChecksum) || errors.Is(err, wire.ErrIO):
		sh.s.log.Warn("peer's copy of a block is damaged; trying the other members", "block", wire.BlockName(id), "peer", p.id, "err", err)
		data, err = sh.s.fetchFromPeers(ctx, id, p.id)
		if err != nil {
			if !logged.IsZero() && time.Since(logged) < 2*sh.s.cfg.AckTimeout {
				return 0, fmt.Errorf("no good copy of %s yet: %w", wire.BlockName(id), err)
			}
			sh.s.log.Error("no good copy of a block to replicate; skipping it", "block", wire.BlockName(id), "err", err)
			sh.s.metrics.repairs.WithLabelValues("unrepairable").Inc()
			return 0, nil
		}
	case err != nil:
		return 0, err
	}
	// The tombstone is checked again under the block's lock, which a
	// DELETE takes after adding its tombstone: a delete that lands while
	// the bytes were in flight is never undone by this copy.
	_, skipped, err := sh.s.store.PutUnless(ctx, id, data, func() bool { return sh.s.tombs.has(id) })
	if skipped {
		return 0, nil
	}
	if err != nil {
		if errors.Is(err, wire.ErrExist) {
			sh.s.log.Error("a peer's block differs from ours under the same id", "block", wire.BlockName(id), "peer", p.id, "err", err)
			return 0, nil
		}
		return 0, fmt.Errorf("store %s from %s: %w", wire.BlockName(id), p.id, err)
	}
	sh.s.metrics.shippedBlocks.Inc()
	sh.s.metrics.shippedBytes.Add(float64(len(data)))
	return len(data), nil
}

// resync copies every block peer p lists that this member lacks, then
// follows p's binlog from the seq p had reached when the listing started,
// so nothing written meanwhile is missed. Blocks this member holds and p
// does not are left alone: deletes arrive through the binlogs, and the
// metaserver's collector of unreferenced blocks removes the rest.
func (sh *shipper) resync(ctx context.Context, p peer, why string) error {
	st, err := sh.blocks.Status(ctx, p.addr)
	if err != nil {
		return err
	}
	sh.s.log.Info("resyncing from peer by inventory", "peer", p.id, "why", why, "peer_blocks", st.Blocks, "peer_seq", st.Seq)
	sh.source(p.id, func(s *wire.Source) { s.Resync, s.Done, s.Total = true, 0, st.Blocks })
	pace := newPacer(sh.s.cfg.ResyncRate)
	var after uint64
	var done, copied uint64
	for {
		page, err := sh.blocks.List(ctx, p.addr, after, 1000, 0)
		if err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(sh.s.cfg.ShipParallel)
		var mu sync.Mutex
		for _, b := range page.Blocks {
			after = max(after, b.ID)
			g.Go(func() error {
				n, err := sh.copyBlock(gctx, p, b.ID, b.Size, time.Time{})
				if err != nil {
					return err
				}
				mu.Lock()
				done++
				if n > 0 {
					copied++
				}
				d := done
				mu.Unlock()
				sh.source(p.id, func(s *wire.Source) { s.Done = d })
				return pace.wait(gctx, n)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if !page.More {
			break
		}
	}
	sh.setOffset(p.id, st.Seq+1)
	sh.save()
	sh.source(p.id, func(s *wire.Source) { s.Resync = false; s.Total = max(s.Total, done) })
	sh.s.log.Info("resync from peer done", "peer", p.id, "listed", done, "copied", copied)
	return nil
}

// fetchFromPeers reads block id from the first peer (other than skip)
// that has a good copy.
func (s *Server) fetchFromPeers(ctx context.Context, id uint64, skip string) ([]byte, error) {
	var errs []error
	for _, p := range s.followers.currentView().peers {
		if p.id == skip {
			continue
		}
		data, err := s.shipper.blocks.GetBlock(ctx, p.addr, id, 0)
		if err == nil {
			return data, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.id, err))
	}
	if len(errs) == 0 {
		return nil, wire.Errorf(wire.ErrNotFound, "no other member to read %s from", wire.BlockName(id))
	}
	return nil, errors.Join(errs...)
}

// backoffWait doubles a delay per failure between min and max.
type backoffWait struct {
	min, max time.Duration
	failures int
}

// sleep waits the next delay; false when ctx ended.
func (b *backoffWait) sleep(ctx context.Context) bool {
	d := b.min << min(b.failures, 16)
	d = min(d, b.max)
	b.failures++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pacer spreads bytes over time at a rate (bytes/s; 0 means no bound).
type pacer struct {
	rate  int64
	mu    sync.Mutex
	start time.Time
	bytes int64
}

func newPacer(rate int64) *pacer { return &pacer{rate: rate, start: time.Now()} }

// wait accounts n bytes and sleeps until the rate allows them.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	p.bytes += int64(n)
	due := p.start.Add(time.Duration(float64(p.bytes) / float64(p.rate) * float64(time.Second)))
	p.mu.Unlock()
	d := time.Until(due)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tombstones remembers recently deleted block ids (a bounded FIFO), so a
// put shipped from a peer that has not applied the delete yet does not
// bring a deleted block back. Ids are never reused, so a tombstone is
// never wrong; one that was evicted costs at most a block that the
// collector of unreferenced blocks removes later.
type tombstones struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newTombstones(n int) *tombstones {
	return &tombstones{set: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

func (t *tombstones) add(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.set[id]; ok {
		return
	}
	if old := t.ring[t.next]; old != 0 {
		delete(t.set, old)
	}
	t.ring[t.next] = id
	t.set[id] = struct{}{}
	t.next = (t.next + 1) % len(t.ring)
}

func (t *tombstones) has(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.set[id]
	return ok
}
