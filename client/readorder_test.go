package client

import (
	"slices"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// Reads prefer in-sync healthy members, spread by block id; members that
// may be catching up come next and members that are down last.
func TestReadOrder(t *testing.T) {
	gc := newGroupCache()
	gc.set([]wire.Group{{ID: 1, Members: []wire.Member{
		{ID: "a", Addr: "a", Healthy: true, InSync: true},
		{ID: "b", Addr: "b", Healthy: false, InSync: true},
		{ID: "c", Addr: "c", Healthy: true},
		{ID: "d", Addr: "d", Healthy: true, InSync: true},
	}}})
	addrs := gc.members[1]
	if !slices.Equal(addrs, []string{"a", "d", "c", "b"}) {
		t.Fatalf("members %v", addrs)
	}
	firsts := map[string]int{}
	for id := uint64(0); id < 10; id++ {
		o := gc.readOrder(1, addrs, id)
		if len(o) != 4 || !slices.Equal(o[2:], []string{"c", "b"}) {
			t.Fatalf("order for %d: %v", id, o)
		}
		firsts[o[0]]++
	}
	if firsts["a"] != 5 || firsts["d"] != 5 {
		t.Fatalf("first reads %v, want them split between the in-sync members", firsts)
	}
}
