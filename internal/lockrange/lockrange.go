// Package lockrange is the arithmetic of byte-range locks: conflicts,
// granting (split, replace, coalesce) and release, as pure functions over
// a list of spans. The metaserver keeps each inode's list; fcntl(2) record
// locks, OFD locks and flock(2) (a whole-file span) all reduce to it.
package lockrange

import (
	"slices"
	"strings"
)

// Lock types, with Linux's values (struct flock's l_type), which is what
// the kernel hands a FUSE filesystem.
const (
	Read   uint32 = 0 // F_RDLCK
	Write  uint32 = 1 // F_WRLCK
	Unlock uint32 = 2 // F_UNLCK
)

// MaxOffset is the kernel's OFFSET_MAX: a lock "to end of file" ends here.
const MaxOffset = 1<<63 - 1

// Span is one lock held by one owner on bytes [Start, End] (inclusive, as
// struct fuse_file_lock has them). Owner is opaque: two spans conflict
// only when their owners differ.
type Span struct {
	Owner string `json:"o"`
	Pid   uint32 `json:"p,omitempty"`
	Typ   uint32 `json:"t"`
	Start uint64 `json:"a"`
	End   uint64 `json:"b"`
}

// Valid reports whether s is a well-formed request.
func (s Span) Valid() bool {
	return (s.Typ == Read || s.Typ == Write || s.Typ == Unlock) && s.Start <= s.End && s.Owner != ""
}

// Overlaps reports whether a and b share a byte.
func (a Span) Overlaps(b Span) bool { return a.Start <= b.End && b.Start <= a.End }

// touches reports whether a and b overlap or are adjacent, so that two
// locks of one owner and type can be coalesced into one.
func (a Span) touches(b Span) bool {
	return a.Overlaps(b) || (a.End != ^uint64(0) && a.End+1 == b.Start) || (b.End != ^uint64(0) && b.End+1 == a.Start)
}

// Conflicts reports whether a lock held as l keeps want from being granted.
func (l Span) Conflicts(want Span) bool {
	return l.Owner != want.Owner && l.Overlaps(want) && (l.Typ == Write || want.Typ == Write)
}

// Conflict returns the first lock of list that keeps want from being
// granted.
func Conflict(list []Span, want Span) (Span, bool) {
	if want.Typ == Unlock {
		return Span{}, false
	}
	for _, l := range list {
		if l.Conflicts(want) {
			return l, true
		}
	}
	return Span{}, false
}

// Apply returns list with want applied for want.Owner: the owner's locks
// inside want's range are replaced (split where they stick out), a new
// lock is added unless want is Unlock, and touching locks of the same
// owner and type are coalesced. Other owners' locks are untouched; the
// caller has checked that they do not conflict.
func Apply(list []Span, want Span) []Span {
	out := make([]Span, 0, len(list)+2)
	for _, l := range list {
		if l.Owner != want.Owner || !l.Overlaps(want) {
			out = append(out, l)
			continue
		}
		if l.Start < want.Start {
			head := l
			head.End = want.Start - 1
			out = append(out, head)
		}
		if l.End > want.End {
			tail := l
			tail.Start = want.End + 1
			out = append(out, tail)
		}
	}
	if want.Typ != Unlock {
		out = append(out, want)
	}
	return coalesce(out)
}

// Release drops every lock of owner; it reports whether any went.
func Release(list []Span, owner string) ([]Span, bool) {
	n := len(list)
	list = slices.DeleteFunc(slices.Clone(list), func(l Span) bool { return l.Owner == owner })
	return list, len(list) != n
}

// ReleaseIf drops every lock whose owner matches drop.
func ReleaseIf(list []Span, drop func(owner string) bool) ([]Span, bool) {
	n := len(list)
	list = slices.DeleteFunc(slices.Clone(list), func(l Span) bool { return drop(l.Owner) })
	return list, len(list) != n
}

// coalesce sorts locks by owner and start and merges touching locks of the
// same owner and type.
func coalesce(list []Span) []Span {
	slices.SortFunc(list, func(a, b Span) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := list[:0]
	for _, l := range list {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Owner == l.Owner && last.Typ == l.Typ && last.touches(l) {
				last.End = max(last.End, l.End)
				last.Pid = l.Pid
				continue
			}
		}
		out = append(out, l)
	}
	return out
}
