package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// Space checks on the write path.
const (
	// spaceRecheck is how long a sign that the cluster is full is
	// trusted: within it writes fail at once; after it the next write
	// asks the metaserver again (an alloc, whose lease the next upload
	// uses).
	spaceRecheck = 500 * time.Millisecond
	// spaceAskTimeout bounds that question. A metaserver that does not
	// answer in time leaves the write to go on: the upload retries
	// placement on its own, and a slow metaserver is no sign of a full
	// cluster.
	spaceAskTimeout = 2 * time.Second
)

// spaceState is what the client last heard about the cluster's room for
// new blocks: from allocs (granted or NOSPACE) and from keep-alives
// (SessionReply.Full).
type spaceState struct {
	mu     sync.Mutex
	fullAt time.Time // last sign the cluster is full
	roomAt time.Time // last sign it has room
}

// noteSpace records a sign that the cluster has room (or is full).
func (c *Client) noteSpace(room bool) {
	c.space.mu.Lock()
	defer c.space.mu.Unlock()
	if room {
		c.space.roomAt = time.Now()
	} else {
		c.space.fullAt = time.Now()
	}
}

// checkSpace fails a write into a full cluster with wire.ErrNoSpace before
// the write buffers anything, so the writer gets ENOSPC from write(2)
// rather than from close(2) after its bytes were accepted. While the
// latest sign says there is room, and it is recent (a keep-alive or an
// alloc within a lease's lifetime), this is a lock and two time
// comparisons. Otherwise the client asks the metaserver for a lease: a
// full cluster answers NOSPACE, which is trusted for spaceRecheck.
func (c *Client) checkSpace(ctx context.Context) error {
	now := time.Now()
	c.space.mu.Lock()
	full := c.space.fullAt.After(c.space.roomAt)
	fullAt, roomAt := c.space.fullAt, c.space.roomAt
	c.space.mu.Unlock()
	switch {
	case !full && now.Sub(roomAt) < leaseMaxAge:
		return nil
	case full && now.Sub(fullAt) < spaceRecheck:
		return wire.Errorf(wire.ErrNoSpace, "client: the cluster has no room for new blocks (as of %v ago)",
			now.Sub(fullAt).Round(time.Millisecond))
	}
	actx, cancel := context.WithTimeout(ctx, spaceAskTimeout)
	defer cancel()
	l := &c.lease
	l.mu.Lock()
	if full {
		l.cur = lease{} // placed before the cluster filled: ask afresh
	}
	err := c.leaseLocked(actx, c.cfg.BlockSize, now)
	l.mu.Unlock()
	if err != nil && errors.Is(err, wire.ErrNoSpace) {
		return fmt.Errorf("client: %w", err)
	}
	return nil // room, or no answer: the upload finds out
}

// discardBlocks tells the metaserver, in the background, that refs were
// uploaded and will never be committed, so it deletes them now instead
// of after the upload grace period. It is an optimization only: when
// the call fails, the collector of uncommitted uploads takes the blocks
// later.
func (c *Client) discardBlocks(refs []wire.BlockRef) {
	if len(refs) == 0 {
		return
	}
	c.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, spaceAskTimeout*5)
		defer cancel()
		req := wire.DiscardReq{Session: c.session, Blocks: refs}
		if err := c.call(ctx, wire.OpDiscard, &req, nil); err != nil && ctx.Err() == nil {
			c.log.Warn("discard of abandoned uploads failed; the upload collector takes them after its grace period",
				"blocks", len(refs), "err", err)
			return
		}
		c.stats.discarded.Add(int64(len(refs)))
	})
}
