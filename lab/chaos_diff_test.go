package lab

import (
	"strings"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestInvDiff(t *testing.T) {
	a := []wire.BlockInfo{{ID: 1, Size: 10}, {ID: 2, Size: 20}, {ID: 3, Size: 30, Mtime: 5}}
	b := []wire.BlockInfo{{ID: 1, Size: 10}, {ID: 3, Size: 30, Mtime: 6}, {ID: 4, Size: 40}}
	got := invDiff(a, b)
	for _, want := range []string{
		"only in the first: [" + wire.BlockName(2) + "/20/0 " + wire.BlockName(3) + "/30/5]",
		"only in the second: [" + wire.BlockName(3) + "/30/6 " + wire.BlockName(4) + "/40/0]",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("invDiff = %q, want it to contain %q", got, want)
		}
	}
	if got := invDiff(a, a); got != "only in the first: []; only in the second: []" {
		t.Errorf("invDiff of equal inventories = %q", got)
	}
}
