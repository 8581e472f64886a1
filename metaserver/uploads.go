package metaserver

import (
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
