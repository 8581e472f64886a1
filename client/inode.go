package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// Commit thresholds: an inode with this many uploaded, uncommitted slices
// or bytes commits while it is being written, to keep commits bounded.
const (
	commitSlices = 1000
	commitBytes  = 256 << 20
)

// maxFileSize is the end of the last chunk a chunk index can name.
const maxFileSize = int64(1<<32) * wire.ChunkSize

// inode is the state of one inode shared by every File of it in a Client:
// one write buffer, one size, one version. Reads through any handle see
// writes through any other.
//
// Lock order: ioMu, then commitMu, then mu. Client.mu may be taken with mu
// held, never the other way round.
type inode struct {
	ino  uint64
	refs int // Files open on it; guarded by Client.mu

	// ioMu is held shared by writes and exclusively by truncation, so a
	// truncation sees no write half done.
	ioMu sync.RWMutex
	// commitMu serializes flushes, commits and truncations, so commits
	// reach the metaserver in write order.
	commitMu sync.Mutex

	mu       sync.Mutex // guards everything below
	settled  *sync.Cond // on mu: an upload finished (or failed)
	wb       *writeBuffer
	attr     wire.Attr // as the metaserver last answered (open, commit, setattr)
	size     int64     // local size, including unflushed writes
	mtime    int64     // local mtime
	version  uint64    // as of open or the last own commit/truncate
	changed  bool      // local data, size or mtime not committed yet
	writes   uint64    // count of writes, to tell whether a commit covered all
	unsynced bool      // a commit without Sync happened since the last sync
	writeErr error     // first failed background upload since the last good flush
	// dirtyAt is no later than the oldest write not committed yet (zero
	// when everything is committed): the periodic commit (commitLoop)
	// flushes n once it is CommitEvery/2 old.
	dirtyAt time.Time
	orphan  bool // unlinked by this client while open
}

func newInode(attr wire.Attr, blockSize int, pool *bufPool) *inode {
	n := &inode{ino: attr.Ino, wb: newWriteBuffer(blockSize, pool)}
	n.settled = sync.NewCond(&n.mu)
	n.adopt(attr)
	return n
}

// adopt takes attributes fresh from the metaserver; n.mu held (or n new).
// Local size and mtime follow them unless local writes are pending.
func (n *inode) adopt(attr wire.Attr) {
	n.attr = attr
	n.version = max(n.version, attr.Version)
	if !n.changed {
		n.size = int64(attr.Size)
		n.mtime = attr.Mtime
	}
}

// overlay reports attr with the local size and mtime when local writes
// are pending. Without them, attributes of a newer version than this
// client holds are adopted: a file that another client appends to grows
// for every handle open here once this client sees its attributes again
// (the mount's attribute timeout), so size and reads agree.
func (n *inode) overlay(attr wire.Attr) wire.Attr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.changed && attr.Version > n.version {
		n.adopt(attr)
	}
	if n.changed {
		attr.Size = uint64(n.size)
		attr.Mtime = n.mtime
	}
	return attr
}

// acquire registers one more File on attr.Ino and returns the shared
// state, refreshed from attr (the close-to-open read).
func (c *Client) acquire(attr wire.Attr) (*inode, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	n := c.inodes[attr.Ino]
	fresh := n == nil
	if fresh {
		n = newInode(attr, c.cfg.BlockSize, c.bufs)
		n.wb.gauge = c.dirty
		c.inodes[attr.Ino] = n
	}
	n.refs++
	c.mu.Unlock()
	if !fresh { // n.mu after c.mu is released: the lock order is n.mu, c.mu
		n.mu.Lock()
		n.adopt(attr)
		n.mu.Unlock()
	}
	return n, nil
}

// openInode returns the shared state of ino when a File has it open here.
func (c *Client) openInode(ino uint64) *inode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inodes[ino]
}

// hasOpen reports whether any File is open in this client.
func (c *Client) hasOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.inodes) > 0
}

// release drops one File of n. The last one waits for n's uploads to
// settle, drops whatever could not be committed, and, when this client
// unlinked the inode while open, tells the metaserver at once so that it
// reclaims the blocks now rather than at the next keep-alive.
func (c *Client) release(ctx context.Context, n *inode) error {
	c.mu.Lock()
	n.refs--
	last := n.refs == 0
	if last {
		delete(c.inodes, n.ino)
	}
	c.mu.Unlock()
	if !last {
		return nil
	}
	// commitMu: a periodic flush that started before the inode left
	// c.inodes finishes first, so no block it commits is discarded.
	n.commitMu.Lock()
	n.mu.Lock()
	for n.wb.inflight > 0 {
		n.settled.Wait()
	}
	n.wb.discard()
	freed := n.wb.takeFreed()
	orphan := n.orphan
	n.mu.Unlock()
	n.commitMu.Unlock()
	c.discardBlocks(freed)
	if !orphan {
		return nil
	}
	// The keep-alive replaces this session's open set on the metaserver,
	// which drops every open of the inode (a release would drop one of
	// possibly several) and reaps the orphan in the same call.
	if err := c.keepAlive(ctx); err != nil {
		c.log.Warn("release of unlinked file failed; the metaserver reclaims it at session expiry",
			"ino", n.ino, "err", err)
	}
	return nil
}

// write stores p at off (at the end of the file when appending) in n's
// write buffer and returns the offset it went to. Slices that reach
// BlockSize are uploaded in the background at once. A writer blocks while
// more than WriteBuffer bytes of n, or DirtyBytes of the whole client,
// are not uploaded yet (until ctx ends).
func (c *Client) write(ctx context.Context, n *inode, p []byte, off int64, appending bool) (int64, error) {
	if off < 0 || off > maxFileSize || int64(len(p)) > maxFileSize-off {
		return 0, wire.Errorf(wire.ErrInvalid, "client: write of %d bytes at %d", len(p), off)
	}
	if len(p) > 0 {
		if err := c.checkSpace(ctx); err != nil {
			return off, fmt.Errorf("client: write inode %d: %w", n.ino, err)
		}
	}
	n.ioMu.RLock()
	defer n.ioMu.RUnlock()
	n.mu.Lock()
	if len(p) == 0 {
		if appending {
			off = n.size
		}
		n.mu.Unlock()
		return off, nil
	}
	for done := 0; done < len(p); {
		for n.wb.dirty >= c.cfg.WriteBuffer && n.writeErr == nil {
			if n.wb.inflight == 0 { // nothing will settle by itself
				c.uploadAll(n)
				if n.wb.inflight == 0 {
					break
				}
				continue
			}
			n.settled.Wait()
		}
		if err := n.writeErr; err != nil {
			n.mu.Unlock()
			return off, fmt.Errorf("client: write inode %d: %w", n.ino, err)
		}
		k := min(len(p)-done, c.cfg.BlockSize)
		if !c.dirty.tryReserve(int64(k)) {
			c.uploadAll(n)
			n.mu.Unlock()
			err := c.waitDirty(ctx, int64(k))
			n.mu.Lock()
			if err != nil {
				n.mu.Unlock()
				return off, fmt.Errorf("client: write inode %d: %w", n.ino, err)
			}
		}
		if done == 0 && appending {
			off = n.size
			if int64(len(p)) > maxFileSize-off {
				n.mu.Unlock()
				c.dirty.free(int64(k))
				return off, wire.Errorf(wire.ErrInvalid, "client: append of %d bytes at %d", len(p), off)
			}
			// Reserve the whole range now: the loop may wait below, and a
			// concurrent append must go after it.
			n.size = off + int64(len(p))
		}
		for _, s := range n.wb.write(off+int64(done), p[done:done+k]) {
			c.startUpload(n, []*wslice{s})
		}
		done += k
		n.size = max(n.size, off+int64(done))
		now := time.Now()
		n.mtime = now.UnixNano()
		if !n.changed || n.dirtyAt.IsZero() {
			n.dirtyAt = now
		}
		n.changed = true
		n.writes++
	}
	needCommit := n.wb.pending > commitSlices || n.wb.pendingBytes > commitBytes
	n.mu.Unlock()
	c.stats.bytesWritten.Add(int64(len(p)))
	if needCommit {
		if err := c.commitPending(ctx, n); err != nil {
			return off, err
		}
	}
	return off, nil
}

// waitDirty waits until k more dirty bytes fit under Config.DirtyBytes
// and reserves them. Meanwhile it starts the uploads of every open
// inode's in-memory slices (what writeback does under memory pressure):
// bytes that nobody uploads would never free room. No inode lock held.
func (c *Client) waitDirty(ctx context.Context, k int64) error {
	c.stats.dirtyWaits.Add(1)
	for {
		wake := c.dirty.wake()
		if c.dirty.tryReserve(k) {
			return nil
		}
		c.mu.Lock()
		inodes := make([]*inode, 0, len(c.inodes))
		for _, n := range c.inodes {
			inodes = append(inodes, n)
		}
		c.mu.Unlock()
		for _, n := range inodes {
			n.mu.Lock()
			if n.writeErr == nil {
				c.uploadAll(n)
			}
			n.mu.Unlock()
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// uploadAll starts uploads of every slice of n still in memory (see
// writeBuffer.packs). n.mu held.
func (c *Client) uploadAll(n *inode) {
	for _, pack := range n.wb.packs() {
		c.startUpload(n, pack)
	}
}

// startUpload freezes slices (all of one chunk) and uploads them as one
// block in the background. A single slice goes out from its own buffer;
// several are copied into one pooled buffer, each slice at its offset.
// n.mu held.
func (c *Client) startUpload(n *inode, group []*wslice) {
	var data []byte
	var pack []byte
	if len(group) == 1 {
		group[0].off = 0
		data = n.wb.freeze(group[0])
	} else {
		pack = c.bufs.get()
		for _, s := range group {
			s.off = uint32(len(pack))
			pack = append(pack, n.wb.freeze(s)...)
		}
		data = pack
	}
	settle := func(id uint64, g uint32, err error) {
		n.mu.Lock()
		for _, s := range group {
			if err == nil {
				n.wb.uploaded(s, id, g, len(data))
			} else {
				n.wb.failed(s, err)
			}
		}
		if err != nil && n.writeErr == nil {
			n.writeErr = err
		}
		n.settled.Broadcast()
		n.mu.Unlock()
		if pack != nil {
			c.bufs.put(pack)
		}
	}
	ok := c.goBackground(func(ctx context.Context) {
		select {
		case c.upSem <- struct{}{}:
		case <-ctx.Done():
			settle(0, 0, ErrClosed)
			return
		}
		// Once an upload of this file has failed (after its retries), the
		// ones queued behind it fail at once: the file cannot be committed
		// anyway, and retrying each in turn would make a writer wait for
		// many retry timeouts in a row.
		n.mu.Lock()
		prior := n.writeErr
		n.mu.Unlock()
		if prior != nil {
			<-c.upSem
			settle(0, 0, prior)
			return
		}
		id, g, err := c.upload(ctx, data)
		<-c.upSem
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		settle(id, g, err)
		if err == nil {
			c.unholdPut(id) // the write buffer names the block now
		}
	})
	if !ok {
		// settle takes n.mu, which our caller holds: record the failure
		// directly.
		for _, s := range group {
			n.wb.failed(s, ErrClosed)
		}
		if n.writeErr == nil {
			n.writeErr = ErrClosed
		}
		if pack != nil {
			c.bufs.put(pack)
		}
	}
}

// flush uploads everything n holds in memory and commits it (durably with
// sync). Without local changes it sends nothing, except that a sync after
// an unsynced commit waits for the metaserver's disk.
func (c *Client) flush(ctx context.Context, n *inode, sync bool) error {
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	return c.flushLocked(ctx, n, sync)
}

// flushLocked is flush with n.commitMu held.
func (c *Client) flushLocked(ctx context.Context, n *inode, sync bool) error {
	n.mu.Lock()
	if !n.changed && n.wb.empty() {
		need := sync && n.unsynced
		n.mu.Unlock()
		if !need {
			return nil
		}
		var attr wire.Attr
		if err := c.call(ctx, wire.OpSetAttr, &wire.SetAttrReq{Ino: n.ino, Sync: true}, &attr); err != nil {
			return fmt.Errorf("client: sync inode %d: %w", n.ino, err)
		}
		n.mu.Lock()
		n.unsynced = false
		n.mu.Unlock()
		return nil
	}
	target := n.wb.seq
	start := time.Now() // every write before it is at or below target
	c.uploadAll(n)
	for {
		waiting, err := n.wb.unsettled(target)
		if err != nil {
			n.mu.Unlock()
			return fmt.Errorf("client: flush inode %d: %w", n.ino, err)
		}
		if !waiting {
			break
		}
		n.settled.Wait()
	}
	n.mu.Unlock()
	if err := c.commitLocked(ctx, n, sync); err != nil {
		return err
	}
	n.mu.Lock()
	switch {
	case !n.changed:
		n.dirtyAt = time.Time{}
	case n.dirtyAt.Before(start): // what is left was written after start
		n.dirtyAt = start
	}
	n.mu.Unlock()
	return nil
}

// commitPending commits what n has uploaded, unless a flush or commit is
// under way (it will commit the same slices).
func (c *Client) commitPending(ctx context.Context, n *inode) error {
	if !n.commitMu.TryLock() {
		return nil
	}
	defer n.commitMu.Unlock()
	return c.commitLocked(ctx, n, false)
}

// commitLocked sends one commit of the uploaded prefix of every chunk's
// slice list, with the local size and mtime. n.commitMu held.
func (c *Client) commitLocked(ctx context.Context, n *inode, sync bool) error {
	n.mu.Lock()
	plan := n.wb.plan()
	writes := n.writes
	req := wire.CommitReq{Ino: n.ino, Slices: plan.slices, Size: uint64(n.size), Mtime: n.mtime, Sync: sync}
	if !n.wb.covers(plan) {
		// Some writes are still in memory or uploading: the local size may
		// run past the bytes committed here, and another client would read
		// zeros there until the next commit. The metaserver grows the file
		// to the end of the committed slices instead.
		req.Size = 0
	}
	if len(plan.slices) == 0 && !n.changed {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()

	c.stats.commits.Add(1)
	var attr wire.Attr
	err := c.call(ctx, wire.OpCommit, &req, &attr)

	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("client: commit inode %d: %w", n.ino, err)
	}
	n.wb.committed(plan)
	if n.writes == writes && n.wb.empty() {
		n.changed = false
		n.writeErr = nil
	}
	n.adopt(attr)
	n.unsynced = !sync
	return nil
}

// setAttrOpen applies a SetAttr to an inode open in this client. A size
// change first trims the local write buffer, flushes what is left (so the
// metaserver sees writes and truncation in order), then truncates.
func (c *Client) setAttrOpen(ctx context.Context, n *inode, req wire.SetAttrReq) (wire.Attr, error) {
	if req.Valid&wire.SetSize == 0 {
		var attr wire.Attr
		if err := c.call(ctx, wire.OpSetAttr, &req, &attr); err != nil {
			return wire.Attr{}, err
		}
		n.mu.Lock()
		n.adopt(attr)
		if req.Valid&(wire.SetMtime|wire.SetMtimeNow) != 0 {
			n.mtime = attr.Mtime
		}
		n.mu.Unlock()
		return n.overlay(attr), nil
	}
	if req.Size > uint64(maxFileSize) {
		return wire.Attr{}, wire.Errorf(wire.ErrInvalid, "client: truncate inode %d to %d bytes", n.ino, req.Size)
	}
	size := int64(req.Size)
	n.ioMu.Lock()
	defer n.ioMu.Unlock()
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	n.mu.Lock()
	n.wb.truncate(size)
	n.size = min(n.size, size)
	freed := n.wb.takeFreed()
	n.mu.Unlock()
	c.discardBlocks(freed)
	if err := c.flushLocked(ctx, n, false); err != nil {
		return wire.Attr{}, err
	}
	var attr wire.Attr
	if err := c.call(ctx, wire.OpSetAttr, &req, &attr); err != nil {
		return wire.Attr{}, fmt.Errorf("client: truncate inode %d: %w", n.ino, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.adopt(attr)
	n.size, n.mtime = int64(attr.Size), attr.Mtime
	n.unsynced = !req.Sync
	return attr, nil
}

// errIfClosed returns ErrClosed once the client is closed.
func (c *Client) errIfClosed() error {
	if c.isClosed() {
		return ErrClosed
	}
	return nil
}
