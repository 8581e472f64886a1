package metaserver

import (
	"context"
	"errors"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// reapBatch bounds how many orphans one reaper batch deletes.
const reapBatch = 256

// session is one client's open files as this metaserver knows them. The
// table lives in memory only: after a restart clients re-announce their
// open inodes with their next keep-alive, and persisted orphans wait one
// SessionTTL for them before being reaped.
type session struct {
	seen time.Time
	open map[uint64]int // ino -> opens by this session
	// uploads are the blocks the client uploaded and has not committed
	// yet, as of its last keep-alive (sorted, merged): the collector of
	// uncommitted uploads skips them while the session lives.
	uploads []wire.IDRange
}

// sessionFor returns the named session, creating it; c.mu held.
func (c *core) sessionFor(name string) *session {
	s := c.sessions[name]
	if s == nil {
		s = &session{open: make(map[uint64]int)}
		c.sessions[name] = s
	}
	s.seen = c.clock()
	return s
}

// addOpen registers one open of ino by a session; c.mu held.
func (c *core) addOpen(name string, ino uint64) {
	s := c.sessionFor(name)
	if s.open[ino] == 0 {
		c.holders[ino]++
	}
	s.open[ino]++
}

// dropHolder forgets that one session holds ino; c.mu held. It reports
// whether no session holds ino any more.
func (c *core) dropHolder(ino uint64) bool {
	c.holders[ino]--
	if c.holders[ino] > 0 {
		return false
	}
	delete(c.holders, ino)
	return true
}

// keepsOpen reports whether the last link of ino may go without deleting
// the inode: some live session holds it open. A session that this process
// has never heard of (it restarted, or the keep-alive is late) is taken at
// its word: it is registered as holding ino, and expires like any other
// session if it never sends a keep-alive. c.mu held.
func (c *core) keepsOpen(ino uint64, session string) bool {
	if c.holders[ino] > 0 {
		return true
	}
	if session != "" && c.sessions[session] == nil {
		c.addOpen(session, ino)
		return true
	}
	return false
}

// open registers an open and answers the inode's current attributes: that
// read gives close-to-open consistency.
func (c *core) open(_ context.Context, req *wire.OpenReq) (wire.Attr, error) {
	if err := checkSession(req.Session, true); err != nil {
		return wire.Attr{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := loadInode(c.db, req.Ino)
	if err != nil {
		return wire.Attr{}, err
	}
	c.addOpen(req.Session, req.Ino)
	return n.Attr, nil
}

// release drops one open; the last release of an orphan deletes it.
// Releasing what is not open is a no-op, so a retried release is harmless.
func (c *core) release(_ context.Context, req *wire.OpenReq) error {
	if err := checkSession(req.Session, true); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[req.Session]
	if s == nil || s.open[req.Ino] == 0 {
		return nil
	}
	s.seen = c.clock()
	s.open[req.Ino]--
	if s.open[req.Ino] > 0 {
		return nil
	}
	delete(s.open, req.Ino)
	if c.dropHolder(req.Ino) {
		return c.reapOrphans(wire.OpRelease, []uint64{req.Ino})
	}
	return nil
}

// keepAlive renews a session and replaces its open set and its uploads
// awaiting commit. Inodes it no longer lists lose this session's opens;
// inodes it newly lists gain one.
func (c *core) keepAlive(_ context.Context, req *wire.SessionReq) error {
	if err := checkSession(req.Session, true); err != nil {
		return err
	}
	uploads, err := normalizeRanges(req.Uploads)
	if err != nil {
		return err
	}
	want := make(map[uint64]bool, len(req.Open))
	for _, ino := range req.Open {
		want[ino] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessionFor(req.Session)
	s.uploads = uploads
	var freed []uint64
	for ino := range s.open {
		if !want[ino] {
			delete(s.open, ino)
			if c.dropHolder(ino) {
				freed = append(freed, ino)
			}
		}
	}
	for ino := range want {
		if s.open[ino] == 0 {
			s.open[ino] = 1
			c.holders[ino]++
		}
	}
	return c.reapOrphans(wire.OpSession, freed)
}

// reap expires sessions whose keep-alives stopped for the TTL and deletes
// orphans no live session holds. Orphans found at startup wait one TTL for
// their sessions to come back. It returns how many orphans it deleted.
func (c *core) reap(_ context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	for name, s := range c.sessions {
		if now.Sub(s.seen) <= c.ttl {
			continue
		}
		for ino := range s.open {
			c.dropHolder(ino)
		}
		delete(c.sessions, name)
		c.log.Info("session expired", "session", name, "open", len(s.open))
	}
	if now.Sub(c.started) <= c.ttl {
		return 0, nil
	}
	if err := c.reapLocks(now); err != nil {
		return 0, err
	}
	var inos []uint64
	for ino := range c.orphans {
		if c.holders[ino] == 0 {
			inos = append(inos, ino)
		}
	}
	done := 0
	for len(inos) > 0 {
		n := min(len(inos), reapBatch)
		if err := c.reapOrphans("reap", inos[:n]); err != nil {
			return done, err
		}
		done += n
		inos = inos[n:]
	}
	return done, nil
}

// reapOrphans deletes, in one batch, those of inos that are orphans no
// session holds. c.mu held.
func (c *core) reapOrphans(op string, inos []uint64) error {
	t := c.begin(op)
	n := 0
	for _, ino := range inos {
		if _, ok := c.orphans[ino]; !ok || c.holders[ino] > 0 {
			continue
		}
		node, err := t.inode(ino)
		switch {
		case errors.Is(err, wire.ErrNotFound): // a stale mark: drop it
			t.b.Delete(keyOrphan(ino))
			t.orphanDel = append(t.orphanDel, ino)
		case err != nil:
			return err
		case node.Nlink > 0: // re-linked since: only the orphan mark goes
			t.b.Delete(keyOrphan(ino))
			t.orphanDel = append(t.orphanDel, ino)
		default:
			if err := t.destroy(node); err != nil {
				return err
			}
		}
		n++
	}
	if n == 0 {
		return nil
	}
	return t.commit()
}

// openCount reports the number of live sessions and held inodes.
func (c *core) openCount() (sessions, held int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions), len(c.holders)
}
