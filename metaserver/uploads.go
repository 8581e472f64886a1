package metaserver

import (
	"context"
	"slices"

	"github.com/reelfs/reelfs/internal/wire"
)

// maxUploadRanges bounds the ranges one keep-alive may report. A client's
// uploads awaiting commit come from a few leased ranges per open file, so
// this is far above what a client sends.
const maxUploadRanges = 1 << 16

// normalizeRanges checks ranges and returns them sorted and merged (a
// copy; adjacent and overlapping ranges become one).
func normalizeRanges(in []wire.IDRange) ([]wire.IDRange, error) {
	if len(in) > maxUploadRanges {
		return nil, errInval("%d upload ranges (at most %d)", len(in), maxUploadRanges)
	}
	out := make([]wire.IDRange, 0, len(in))
	for _, r := range in {
		if r[0] == 0 || r[0] > r[1] {
			return nil, errInval("upload range [%d, %d]", r[0], r[1])
		}
		out = append(out, r)
	}
	return mergeRanges(out), nil
}

// mergeRanges sorts rs in place and merges overlapping and adjacent
// ranges.
func mergeRanges(rs []wire.IDRange) []wire.IDRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b wire.IDRange) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r[0] <= last[1] || r[0] == last[1]+1 {
			last[1] = max(last[1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// inRanges reports whether id lies in one of rs (sorted and merged).
func inRanges(rs []wire.IDRange, id uint64) bool {
	i, _ := slices.BinarySearchFunc(rs, id, func(r wire.IDRange, id uint64) int {
		switch {
		case r[1] < id:
			return -1
		case r[0] > id:
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i][0] <= id && id <= rs[i][1]
}

// heldUploads is every live session's uploads awaiting commit, sorted and
// merged; c.mu held.
func (c *core) heldUploads() []wire.IDRange {
	var all []wire.IDRange
	for _, s := range c.sessions {
		all = append(all, s.uploads...)
	}
	return mergeRanges(all)
}

// maxDiscard bounds the blocks one discard names: a client discards the
// uploads of one file at a time, at most its write buffer's worth of
// blocks plus the few of failed attempts.
const maxDiscard = 1 << 16

// discard queues for deletion the blocks a client uploaded and will never
// commit (its write failed or was abandoned), so their space comes back
// at once rather than after the upload grace period. A block is queued
// only if it was leased, is in no chunk, is not queued already and no
// other live session reports it as an upload awaiting commit; the
// caller's own session stops holding it here, so the collector does not
// have to wait for its next keep-alive either. A block that was never
// written (a PUT that failed everywhere) is queued all the same: its
// delete answers 404, which counts as done.
func (c *core) discard(ctx context.Context, req *wire.DiscardReq) error {
	if err := checkSession(req.Session, true); err != nil {
		return err
	}
	if len(req.Blocks) > maxDiscard {
		return errInval("discard of %d blocks (at most %d)", len(req.Blocks), maxDiscard)
	}
	for i, b := range req.Blocks {
		if b.ID == 0 {
			return errInval("discard block %d: id 0", i)
		}
		if !c.tracker.known(b.Group) {
			return errInval("discard block %d: unknown group %d", i, b.Group)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var others []wire.IDRange
	for name, s := range c.sessions {
		if name == req.Session {
			s.uploads = withoutIDs(s.uploads, req.Blocks)
			continue
		}
		others = append(others, s.uploads...)
	}
	others = mergeRanges(others)
	t := c.begin(wire.OpDiscard)
	t.tag(ctx)
	n := 0
	seen := make(map[uint64]bool, len(req.Blocks))
	for _, b := range req.Blocks {
		if seen[b.ID] || b.ID >= t.ctr.nextBlock || inRanges(others, b.ID) {
			continue
		}
		seen[b.ID] = true
		_, ref, err := getOpt(c.db, keyBlock(b.ID))
		if err != nil {
			return ioError("discard", err)
		}
		_, tomb, err := getOpt(c.db, keyTomb(b.ID))
		if err != nil {
			return ioError("discard", err)
		}
		if ref || tomb {
			continue
		}
		t.queueBlock(b.ID, b.Group)
		n++
	}
	if n == 0 {
		return nil
	}
	if err := t.commit(); err != nil {
		return err
	}
	c.log.Debug("queued discarded uploads", "blocks", n, "session", req.Session)
	return nil
}

// withoutIDs returns rs (sorted, merged) without the ids of bs.
func withoutIDs(rs []wire.IDRange, bs []wire.BlockRef) []wire.IDRange {
	if len(rs) == 0 || len(bs) == 0 {
		return rs
	}
	ids := make([]uint64, 0, len(bs))
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []wire.IDRange
	j := 0
	for _, r := range rs {
		for j < len(ids) && ids[j] < r[0] {
			j++
		}
		start, open := r[0], true // [start, r[1]] is still to be kept
		for ; j < len(ids) && ids[j] <= r[1]; j++ {
			id := ids[j]
			if id > start {
				out = append(out, wire.IDRange{start, id - 1})
			}
			if id == r[1] { // id+1 could wrap past the top of uint64
				open = false
				j++
				break
			}
			start = id + 1
		}
		if open {
			out = append(out, wire.IDRange{start, r[1]})
		}
	}
	return out
}

// full reports whether the cluster is out of space: see spaceFull. Right
// after a start or a takeover, while chunkservers have not all
// heartbeated, it says no: alloc answers UNAVAILABLE then, not NOSPACE.
func (c *core) full() bool {
	now := c.clock()
	if now.Sub(c.startedAt()) < c.tracker.timeout && c.tracker.unheard() {
		return false
	}
	return spaceFull(c.tracker.groups(now))
}

// spaceFull reports whether no group has the room for a new block of the
// largest size (with placeMargin) on every healthy in-sync member, while
// some group has a healthy member. It looks at space only: a group that
// lacks in-sync members for a moment (a member down, a heartbeat late)
// makes allocations fail with NOSPACE too, but clients told "full" fail
// every write at once, which a passing quorum problem must not cause.
func spaceFull(groups []wire.Group) bool {
	need := uint64(wire.MaxBlockSize) + placeMargin
	seen := false
	for _, g := range groups {
		healthy, fits := 0, true
		for _, m := range g.Members {
			if !m.Healthy {
				continue
			}
			healthy++
			if slices.Contains(g.ISR, m.ID) && (m.Full || m.Free < need) {
				fits = false
			}
		}
		if healthy == 0 {
			continue
		}
		seen = true
		if fits {
			return false
		}
	}
	return seen
}
