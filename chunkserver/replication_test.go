package chunkserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/blockclient"
	"github.com/reelfs/reelfs/internal/wire"
	"github.com/reelfs/reelfs/metaserver"
)

func TestQuorumState(t *testing.T) {
	v := groupView{known: true, isr: []string{"a", "b", "c"}, minCopies: 2}
	cases := []struct {
		name string
		seq  uint64
		self string
		view groupView
		acks map[string]uint64
		done bool
		code wire.Code
	}{
		{"no view yet: undecided", 5, "a", groupView{}, nil, false, ""},
		{"every in-sync follower past seq", 5, "a", v, map[string]uint64{"b": 5, "c": 9}, true, ""},
		{"one follower behind", 5, "a", v, map[string]uint64{"b": 5, "c": 4}, false, ""},
		{"a follower outside the set does not count or block", 5, "a",
			groupView{known: true, isr: []string{"a", "b"}, minCopies: 2}, map[string]uint64{"b": 7, "c": 0}, true, ""},
		{"set below min-copies", 5, "a", groupView{known: true, isr: []string{"a"}, minCopies: 2}, nil, false, wire.CodeNoSpace},
		{"self outside the set", 5, "d", v, map[string]uint64{"a": 9, "b": 9, "c": 9}, false, wire.CodeNoSpace},
		{"single copy allowed when configured", 5, "a", groupView{known: true, isr: []string{"a"}, minCopies: 1}, nil, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done, err := quorumState(tc.seq, tc.self, tc.view, tc.acks)
			if done != tc.done || (tc.code == "" && err != nil) || (tc.code != "" && wire.CodeOf(err) != tc.code) {
				t.Fatalf("quorumState = %v, %v; want %v, code %q", done, err, tc.done, tc.code)
			}
		})
	}
}

func TestFollowersWaitAndCatchUp(t *testing.T) {
	t0 := time.Unix(100, 0)
	f := newFollowers("a", t0)
	f.setView(groupView{known: true, isr: []string{"a", "b", "c"}, minCopies: 2, peers: []peer{{"b", ""}, {"c", ""}}})
	res := make(chan error, 1)
	go func() { res <- f.wait(context.Background(), 3, t0) }()
	f.fetched("b", 4, 3, t0.Add(time.Second))
	select {
	case err := <-res:
		t.Fatalf("acknowledged with c behind: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// c dies; the tracker drops it from the set: the waiter completes.
	f.setView(groupView{known: true, isr: []string{"a", "b"}, minCopies: 2})
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	// The set falls below min-copies: the waiter asks for a fresh view
	// (the refusal may come from a stale one) and fails when the fresh
	// view refuses too.
	kicked := make(chan struct{}, 1)
	f.kick = func() { kicked <- struct{}{} }
	f.setView(groupView{known: true, isr: []string{"a"}, minCopies: 2})
	go func() { res <- f.wait(context.Background(), 9, t0) }()
	<-kicked
	f.setView(groupView{known: true, isr: []string{"a"}, minCopies: 2})
	if err := <-res; !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("wait below min-copies: %v", err)
	}
	// A stale refusal that a fresh view lifts is acknowledged.
	f.setView(groupView{known: true, isr: []string{"a"}, minCopies: 2})
	go func() { res <- f.wait(context.Background(), 9, t0) }()
	<-kicked
	f.fetched("b", 10, 9, t0.Add(time.Second))
	f.setView(groupView{known: true, isr: []string{"a", "b"}, minCopies: 2})
	if err := <-res; err != nil {
		t.Fatalf("wait after a fresh view: %v", err)
	}
	// Catch-up times follow Kafka's rule: a fetch past the last seq seen
	// at the previous fetch means caught up as of that previous fetch.
	f.fetched("c", 2, 10, t0.Add(2*time.Second))  // behind
	f.fetched("c", 11, 20, t0.Add(3*time.Second)) // past 10: caught up as of 2s
	rep := f.report(20, func(uint64) uint64 { return 7 })
	i := slices.IndexFunc(rep, func(r wire.Follower) bool { return r.ID == "c" })
	if i < 0 || rep[i].CaughtUp != t0.Add(2*time.Second).UnixNano() || rep[i].Ack != 10 || rep[i].Behind != 10 || rep[i].BehindBytes != 7 {
		t.Fatalf("report %+v", rep)
	}
	f.fetched("c", 21, 20, t0.Add(4*time.Second)) // nothing left: caught up now
	rep = f.report(20, func(uint64) uint64 { return 0 })
	i = slices.IndexFunc(rep, func(r wire.Follower) bool { return r.ID == "c" })
	if rep[i].CaughtUp != t0.Add(4*time.Second).UnixNano() || rep[i].Behind != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// cluster is a metaserver and chunkservers of group 1, in-process.
type cluster struct {
	t      *testing.T
	meta   string
	dirs   []string
	stop   []func()
	srv    []*Server
	blocks *blockclient.Client
}

func startMeta(t *testing.T) string {
	cfg := metaserver.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.ReplicaLagTime = 2 * time.Second
	m, err := metaserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m.Addr()
}

func newCluster(t *testing.T, n int) *cluster {
	c := &cluster{t: t, meta: startMeta(t), blocks: blockclient.New(blockclient.Config{})}
	for i := 0; i < n; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.stop = append(c.stop, nil)
		c.srv = append(c.srv, nil)
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.stop {
			c.kill(i)
		}
	})
	return c
}

func (c *cluster) start(i int) {
	c.startWith(i, func(*Config) {})
}

func (c *cluster) startWith(i int, tweak func(*Config)) {
	cfg := DefaultConfig()
	cfg.Dir = c.dirs[i]
	cfg.Listen = "127.0.0.1:0"
	cfg.Reserve = 0
	cfg.Meta = c.meta
	cfg.HeartbeatEvery = 200 * time.Millisecond
	cfg.ShipWait = time.Second
	cfg.ScrubRate = 0
	tweak(&cfg)
	s, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c.srv[i] = s
	c.stop[i] = func() { cancel(); <-done }
}

func (c *cluster) kill(i int) {
	if c.stop[i] != nil {
		c.stop[i]()
		c.stop[i] = nil
	}
}

// inventory lists member i's block ids.
func (c *cluster) inventory(i int) []uint64 {
	var ids []uint64
	var after uint64
	for {
		page, err := c.blocks.List(context.Background(), c.srv[i].Addr(), after, 1000, 0)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, b := range page.Blocks {
			ids = append(ids, b.ID)
			after = b.ID
		}
		if !page.More {
			return ids
		}
	}
}

// converge waits until every running member lists the same blocks as
// member 0, at most d.
func (c *cluster) converge(d time.Duration, members ...int) []uint64 {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		want := c.inventory(members[0])
		same := true
		for _, i := range members[1:] {
			same = same && slices.Equal(c.inventory(i), want)
		}
		if same {
			return want
		}
		if time.Now().After(deadline) {
			for _, i := range members {
				c.t.Logf("member %d: %d blocks", i, len(c.inventory(i)))
			}
			c.t.Fatalf("inventories differ after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitISR waits until the tracker's in-sync set has n members.
func (c *cluster) waitISR(n int, d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var r wire.GroupsReply
		hc := c.srv[0].hc
		for i := range c.srv {
			if c.stop[i] != nil {
				hc = c.srv[i].hc
			}
		}
		if err := wire.Call(context.Background(), hc, c.meta, wire.PathMeta+wire.OpGroups, "", struct{}{}, &r); err == nil &&
			len(r.Groups) == 1 && len(r.Groups[0].ISR) == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("in-sync set never reached %d members", n)
}

func randomBlock(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestReplicationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a metaserver and three chunkservers")
	}
	c := newCluster(t, 3)
	c.waitISR(3, 10*time.Second)
	ctx := context.Background()
	// A PUT to any member is acknowledged only once every member holds
	// it: right after the reply, every inventory has it.
	blocks := map[uint64][]byte{}
	for id := uint64(1); id <= 30; id++ {
		data := randomBlock(t, 1000+int(id)*5000)
		blocks[id] = data
		addr := c.srv[int(id)%3].Addr()
		if _, err := c.blocks.Put(ctx, addr, id, data, ""); err != nil {
			t.Fatalf("put %d: %v", id, err)
		}
		for i := range c.srv {
			if _, err := c.srv[i].store.Stat(ctx, id); err != nil {
				t.Fatalf("block %d acknowledged but missing on member %d: %v", id, i, err)
			}
		}
	}
	// Deletes ship too.
	for id := uint64(1); id <= 10; id++ {
		if err := c.blocks.Delete(ctx, c.srv[0].Addr(), id); err != nil {
			t.Fatal(err)
		}
	}
	ids := c.converge(10*time.Second, 0, 1, 2)
	if len(ids) != 20 || ids[0] != 11 {
		t.Fatalf("inventory %v", ids)
	}

	// Member 2 stops; writes go on after it leaves the in-sync set; it
	// comes back, resumes from its saved offsets and converges.
	c.kill(2)
	c.waitISR(2, 15*time.Second)
	for id := uint64(31); id <= 60; id++ {
		data := randomBlock(t, 70_000)
		blocks[id] = data
		if _, err := c.blocks.Put(ctx, c.srv[int(id)%2].Addr(), id, data, ""); err != nil {
			t.Fatalf("put %d with a member down: %v", id, err)
		}
	}
	for id := uint64(31); id <= 40; id++ {
		if err := c.blocks.Delete(ctx, c.srv[1].Addr(), id); err != nil {
			t.Fatal(err)
		}
	}
	c.start(2)
	ids = c.converge(20*time.Second, 0, 1, 2)
	if len(ids) != 40 {
		t.Fatalf("after catch-up: %d blocks, want 40", len(ids))
	}
	c.waitISR(3, 15*time.Second)
	for _, id := range ids {
		got, err := c.blocks.GetBlock(ctx, c.srv[2].Addr(), id, 0)
		if err != nil || !bytes.Equal(got, blocks[id]) {
			t.Fatalf("block %d on the returned member: %v", id, err)
		}
	}

	// An empty replacement disk for member 1 fills up from its peers by
	// inventory and becomes in-sync.
	c.kill(1)
	if err := os.RemoveAll(c.dirs[1]); err != nil {
		t.Fatal(err)
	}
	c.dirs[1] = t.TempDir()
	c.start(1)
	c.converge(20*time.Second, 0, 1, 2)
	c.waitISR(3, 15*time.Second)

	// Damage member 0's copy of a block: the scrubber's repair (here
	// asked for by a read) replaces it from a peer.
	id := ids[3]
	path := c.srv[0].store.(*DiskStore).Path(id)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 0xff
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	c.srv[0].store.(*DiskStore).trailers.invalidate(id)
	if _, err := c.blocks.GetBlock(ctx, c.srv[0].Addr(), id, 0); !errors.Is(err, wire.ErrChecksum) {
		t.Fatalf("read of the damaged copy: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.blocks.GetBlock(ctx, c.srv[0].Addr(), id, 0)
		if err == nil && bytes.Equal(got, blocks[id]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("damaged copy not repaired: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := c.srv[0].scrub.snapshot(); r.Repaired != 1 {
		t.Fatalf("scrub report %+v", r)
	}
}

// A member whose offset fell behind a peer's trimmed binlog resyncs by
// inventory; offsets survive a restart in replica.json.
func TestTrimmedLogResync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a metaserver and three chunkservers")
	}
	c := &cluster{t: t, meta: startMeta(t), blocks: blockclient.New(blockclient.Config{})}
	small := func(cfg *Config) { cfg.BinlogKeep = 8 }
	for i := 0; i < 3; i++ {
		c.dirs = append(c.dirs, t.TempDir())
		c.stop = append(c.stop, nil)
		c.srv = append(c.srv, nil)
		c.startWith(i, small)
	}
	t.Cleanup(func() {
		for i := range c.stop {
			c.kill(i)
		}
	})
	c.waitISR(3, 10*time.Second)
	ctx := context.Background()
	for id := uint64(1); id <= 5; id++ {
		if _, err := c.blocks.Put(ctx, c.srv[0].Addr(), id, randomBlock(t, 3000), ""); err != nil {
			t.Fatal(err)
		}
	}
	c.converge(10*time.Second, 0, 1, 2)
	c.kill(2) // a clean stop saves its offsets
	b, err := os.ReadFile(c.dirs[2] + "/" + offsetsFile)
	if err != nil || !bytes.Contains(b, []byte(c.srv[0].ID())) {
		t.Fatalf("offsets after a clean stop: %s, %v", b, err)
	}
	c.waitISR(2, 15*time.Second)
	// 60 more entries on each remaining member: their logs keep the last
	// 8, far past member 2's offsets.
	for id := uint64(6); id <= 65; id++ {
		if _, err := c.blocks.Put(ctx, c.srv[int(id)%2].Addr(), id, randomBlock(t, 3000), ""); err != nil {
			t.Fatal(err)
		}
	}
	if first := c.srv[0].binlog.(*Binlog).First(); first < 10 {
		t.Fatalf("member 0's binlog starts at %d: not trimmed", first)
	}
	c.startWith(2, small)
	ids := c.converge(20*time.Second, 0, 1, 2)
	if len(ids) != 65 {
		t.Fatalf("after the resync: %d blocks, want 65", len(ids))
	}
	c.waitISR(3, 15*time.Second)
	if n := testutilCounter(t, c.srv[2]); n == 0 {
		t.Fatal("no block was copied by the resync")
	}
}

// testutilCounter is the blocks member s copied from peers.
func testutilCounter(t *testing.T, s *Server) float64 {
	mfs, err := s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "reelfs_chunk_shipped_blocks_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// A copy from a peer is vetoed under the block's lock: a block deleted
// here while its bytes were in flight does not come back.
func TestPutUnless(t *testing.T) {
	st, err := OpenDiskStore(context.Background(), t.TempDir(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if created, skipped, err := st.PutUnless(ctx, 7, []byte("deleted meanwhile"), func() bool { return true }); created || !skipped || err != nil {
		t.Fatalf("vetoed put = %v, %v, %v", created, skipped, err)
	}
	if _, err := st.Stat(ctx, 7); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("a vetoed block was stored: %v", err)
	}
	if created, skipped, err := st.PutUnless(ctx, 7, []byte("welcome"), func() bool { return false }); !created || skipped || err != nil {
		t.Fatalf("allowed put = %v, %v, %v", created, skipped, err)
	}
}
