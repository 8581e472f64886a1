package chunkserver

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestEpochFence(t *testing.T) {
	dir := t.TempDir()
	f, err := loadEpochFence(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		e    uint64
		ok   bool
		then uint64
	}{
		{0, true, 0}, // no failover: always
		{3, true, 3},
		{3, true, 3},
		{2, false, 3}, // a deposed leader
		{0, true, 3},
		{5, true, 5},
		{4, false, 5},
	}
	for i, s := range steps {
		ok, err := f.admit(s.e)
		if err != nil || ok != s.ok || f.current() != s.then {
			t.Fatalf("step %d: admit(%d) = %v, %v; current %d, want %v, %d", i, s.e, ok, err, f.current(), s.ok, s.then)
		}
	}
	// The newest epoch survives a restart.
	g, err := loadEpochFence(dir)
	if err != nil || g.current() != 5 {
		t.Fatalf("reloaded: %d, %v", g.current(), err)
	}
	if ok, _ := g.admit(4); ok {
		t.Fatal("a restart forgot the epoch")
	}
}

// TestDeleteUnderStaleEpoch: once a delete under epoch 7 arrived, one
// under epoch 6 (a deposed metaserver leader) is refused and the block
// stays; a garbled epoch is EINVAL.
func TestDeleteUnderStaleEpoch(t *testing.T) {
	ts := startServer(t, testConfig(t))
	for _, id := range []uint64{1, 2} {
		wantStatus(t, ts.do(t, fasthttp.MethodPut, blockURI(id), []byte("block")), fasthttp.StatusCreated, "")
	}
	wantStatus(t, ts.do(t, fasthttp.MethodDelete, blockURI(1), nil, wire.HeaderEpoch, "7"), fasthttp.StatusNoContent, "")
	resp := ts.do(t, fasthttp.MethodDelete, blockURI(2), nil, wire.HeaderEpoch, "6")
	if wire.CodeOf(wire.ErrorFromResponse(resp)) != wire.CodeStaleEpoch {
		t.Fatalf("stale delete: %d %s", resp.StatusCode(), resp.Body())
	}
	wantStatus(t, ts.do(t, fasthttp.MethodGet, blockURI(2), nil), fasthttp.StatusOK, "")
	wantStatus(t, ts.do(t, fasthttp.MethodDelete, blockURI(2), nil, wire.HeaderEpoch, "x"), fasthttp.StatusBadRequest, wire.CodeInvalid)
	wantStatus(t, ts.do(t, fasthttp.MethodDelete, blockURI(2), nil, wire.HeaderEpoch, "7"), fasthttp.StatusNoContent, "")
}
