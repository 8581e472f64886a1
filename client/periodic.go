package client

import (
	"context"
	"time"
)

// commitLoop makes written bytes visible and safe from a crash of this
// process without waiting for a close: every CommitEvery/10 it flushes
// (uploads and commits, without fsync) each open inode whose oldest
// uncommitted write is CommitEvery/2 old, so a write is committed
// 0.5-0.6 CommitEvery after it was made, plus the upload: well inside
// CommitEvery, which leaves a reader that polls once a second (tail -f)
// time to see it at its next poll. Half, not all of CommitEvery: the
// flush resets the age to its start, so a steady writer commits about
// twice per CommitEvery, each commit cutting at most one partial block. A flush runs on its own goroutine, so a
// slow upload of one file does not hold up the others, and an inode that
// is flushing already (its own close, fsync, or the previous round) is
// skipped. An inode whose upload failed is left alone: its writer gets
// the error at its next write or close.
func (c *Client) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitEvery / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, n := range c.dueInodes(now) {
				if !n.commitMu.TryLock() {
					continue
				}
				started := c.goBackground(func(ctx context.Context) {
					defer n.commitMu.Unlock()
					if err := c.flushLocked(ctx, n, false); err != nil && ctx.Err() == nil {
						c.stats.periodicFailures.Add(1)
						c.log.Warn("periodic commit failed; the writer gets the error at its next write or close",
							"ino", n.ino, "err", err)
					}
				})
				if !started {
					n.commitMu.Unlock()
					return
				}
				c.stats.periodicCommits.Add(1)
			}
		}
	}
}

// dueInodes lists the open inodes with writes older than CommitEvery/2
// and no failed upload.
func (c *Client) dueInodes(now time.Time) []*inode {
	c.mu.Lock()
	all := make([]*inode, 0, len(c.inodes))
	for _, n := range c.inodes {
		all = append(all, n)
	}
	c.mu.Unlock()
	var due []*inode
	for _, n := range all {
		n.mu.Lock()
		if n.changed && n.writeErr == nil && !n.dirtyAt.IsZero() && now.Sub(n.dirtyAt) >= c.cfg.CommitEvery/2 {
			due = append(due, n)
		}
		n.mu.Unlock()
	}
	return due
}
