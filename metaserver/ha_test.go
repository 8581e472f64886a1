package metaserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/consul/consultest"
	"github.com/reelfs/reelfs/internal/wire"
)

// haNode is one metaserver of a failover test, restartable on its port.
type haNode struct {
	t      *testing.T
	dir    string
	addr   string
	cc     *consul.Client
	s      *Server
	cancel context.CancelFunc
	done   chan error
}

func (n *haNode) start() {
	n.t.Helper()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Listen = n.dir, n.addr
	cfg.Consul, cfg.HA, cfg.HALag = n.cc, true, time.Second
	cfg.HeartbeatTimeout = 2 * time.Second
	s, err := New(cfg)
	if err != nil {
		n.t.Fatalf("start metaserver: %v", err)
	}
	n.s, n.addr = s, s.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- s.Run(ctx) }()
}

func (n *haNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		n.t.Errorf("metaserver %s did not stop", n.addr)
	}
	n.cancel = nil
}

func (n *haNode) leading() bool { ok, _ := n.s.ha.isLeader(); return ok }

func startHA(t *testing.T, count int) ([]*haNode, *consultest.Agent) {
	agent := consultest.Start(t)
	ccfg := consul.DefaultConfig()
	ccfg.Address = agent.Addr
	cc, err := consul.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*haNode, count)
	for i := range nodes {
		nodes[i] = &haNode{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", cc: cc}
		nodes[i].start()
		n := nodes[i]
		t.Cleanup(n.stop)
	}
	return nodes, agent
}

// waitLeader waits for exactly one leading node whose in-sync set has
// want members, and returns it.
func waitLeader(t *testing.T, nodes []*haNode, want int, limit time.Duration) *haNode {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var lead *haNode
		n := 0
		for _, x := range nodes {
			if x.cancel != nil && x.leading() {
				lead, n = x, n+1
			}
		}
		if n == 1 && len(lead.s.ha.status().ISR) == want {
			return lead
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, x := range nodes {
		if x.cancel != nil {
			t.Logf("%s: %+v", x.addr, x.s.ha.status())
		}
	}
	t.Fatalf("no single leader with %d in-sync members within %v", want, limit)
	return nil
}

// TestHAFailover: three metaservers; creates through the address list
// while the leader is stopped twice; every acknowledged create survives,
// none is applied twice, followers catch up, and a wiped member resyncs.
func TestHAFailover(t *testing.T) {
	nodes, _ := startHA(t, 3)
	lead := waitLeader(t, nodes, 3, 40*time.Second)
	t.Logf("leader %s", lead.addr)
	list := ""
	for i, n := range nodes {
		if i > 0 {
			list += ","
		}
		list += n.addr
	}
	leaders, err := wire.ParseLeaders(list)
	if err != nil {
		t.Fatal(err)
	}
	hc := &fasthttp.Client{}
	var (
		mu    sync.Mutex
		acked = map[string]uint64{}
	)
	create := func(ctx context.Context, name string) error {
		var a wire.Attr
		id := "test-" + name
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := wire.CallLeader(ctx, hc, leaders, wire.PathMeta+wire.OpMkdir, "", id,
				&wire.CreateReq{Parent: wire.RootIno, Name: name, Mode: wire.ModeDir | 0o755}, &a)
			if err == nil {
				mu.Lock()
				acked[name] = a.Ino
				mu.Unlock()
				return nil
			}
			if !wire.Transient(err) || time.Now().After(deadline) {
				return fmt.Errorf("mkdir %s: %w", name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	stopWork := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stopWork:
					return
				default:
				}
				if err := create(ctx, fmt.Sprintf("w%d-%05d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var failovers []time.Duration
	for round := range 2 {
		time.Sleep(time.Second)
		old := waitLeader(t, nodes, 3, 30*time.Second)
		stopped := time.Now()
		old.stop()
		next := waitLeader(t, nodes, 2, 30*time.Second)
		failovers = append(failovers, time.Since(stopped))
		t.Logf("round %d: %s -> %s in %v", round, old.addr, next.addr, time.Since(stopped).Round(time.Millisecond))
		old.start()
	}
	close(stopWork)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	lead = waitLeader(t, nodes, 3, 30*time.Second)
	// Every acknowledged create is there, with the inode it was answered with.
	for name, ino := range acked {
		a, err := lead.s.core.lookup(ctx, &wire.LookupReq{Parent: wire.RootIno, Name: name})
		if err != nil {
			t.Fatalf("acknowledged mkdir %s lost: %v", name, err)
		}
		if a.Ino != ino {
			t.Fatalf("mkdir %s answered inode %d, namespace has %d (applied twice?)", name, ino, a.Ino)
		}
	}
	t.Logf("%d creates acknowledged, failovers %v", len(acked), failovers)
	// Every member holds the same log end once caught up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		last := lead.s.core.lastSeq()
		same := true
		for _, n := range nodes {
			if n.s.core.lastSeq() != last {
				same = false
			}
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not converge on seq %d", last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A wiped follower (new disk: new node id) resyncs from a snapshot
	// and joins the in-sync set.
	var f *haNode
	for _, n := range nodes {
		if n != lead {
			f = n
			break
		}
	}
	f.stop()
	f.dir = t.TempDir()
	f.start()
	deadline = time.Now().Add(30 * time.Second)
	for !slices.Contains(waitLeader(t, nodes, 3, 30*time.Second).s.ha.status().ISR, f.s.ha.self) {
		if time.Now().After(deadline) {
			t.Fatalf("the wiped member %s never joined the in-sync set", f.s.ha.self)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, err := f.s.core.lookup(ctx, &wire.LookupReq{Parent: wire.RootIno, Name: "w0-00000"})
	if err != nil || a.Ino != acked["w0-00000"] {
		t.Fatalf("resynced follower: %+v, %v", a, err)
	}
	// A request id already applied is answered, not applied again.
	var a2 wire.Attr
	err = wire.CallLeader(ctx, hc, leaders, wire.PathMeta+wire.OpMkdir, "", "test-w0-00000",
		&wire.CreateReq{Parent: wire.RootIno, Name: "w0-00000", Mode: wire.ModeDir | 0o755}, &a2)
	if err != nil || a2.Ino != acked["w0-00000"] {
		t.Fatalf("retried mkdir: %+v, %v", a2, err)
	}
	err = wire.CallLeader(ctx, hc, leaders, wire.PathMeta+wire.OpMkdir, "", "",
		&wire.CreateReq{Parent: wire.RootIno, Name: "w0-00000", Mode: wire.ModeDir | 0o755}, &a2)
	if !errors.Is(err, wire.ErrExist) {
		t.Fatalf("mkdir of an existing name without a request id: %v", err)
	}
}

// TestHAFollowerLeaves: a follower stopped on purpose tells the leader,
// which takes it out of the in-sync set and stops listing it (before,
// it stayed listed "NOT in sync" and `reelfs status` exited 1 until the
// leader changed); started again, it rejoins and is listed in sync.
func TestHAFollowerLeaves(t *testing.T) {
	nodes, _ := startHA(t, 3)
	lead := waitLeader(t, nodes, 3, 40*time.Second)
	var f *haNode
	for _, n := range nodes {
		if n != lead {
			f = n
			break
		}
	}
	id := f.s.ha.self
	f.stop()
	lead = waitLeader(t, nodes, 2, 20*time.Second)
	listed := func() (bool, bool) {
		for _, x := range lead.s.ha.status().Followers {
			if x.ID == id {
				return true, x.InSync
			}
		}
		return false, false
	}
	// Past --ha-lag, when a member that did not say goodbye would be out
	// of the set but still listed.
	time.Sleep(2 * time.Second)
	if l, _ := listed(); l {
		t.Fatalf("the leader still lists %s, which shut down: %+v", id, lead.s.ha.status())
	}
	if st := lead.s.ha.status(); slices.Contains(st.ISR, id) {
		t.Fatalf("in-sync set %v still holds %s", st.ISR, id)
	}
	// What the smaller set acknowledges survives the leader: the member
	// that stayed takes over and holds it.
	var stayed *haNode
	for _, n := range nodes {
		if n != lead && n != f {
			stayed = n
		}
	}
	leaders, err := wire.ParseLeaders(lead.addr + "," + stayed.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var a wire.Attr
	if err := wire.CallLeader(ctx, &fasthttp.Client{}, leaders, wire.PathMeta+wire.OpMkdir, "", "after-leave",
		&wire.CreateReq{Parent: wire.RootIno, Name: "after-leave", Mode: wire.ModeDir | 0o755}, &a); err != nil {
		t.Fatal(err)
	}
	old := lead
	old.stop()
	if next := waitLeader(t, nodes, 1, 30*time.Second); next != stayed {
		t.Fatalf("%s leads, want %s, the member that stayed", next.addr, stayed.addr)
	}
	if got, err := stayed.s.core.lookup(ctx, &wire.LookupReq{Parent: wire.RootIno, Name: "after-leave"}); err != nil || got.Ino != a.Ino {
		t.Fatalf("mkdir acknowledged before the leader stopped: %+v, %v on the new leader", got, err)
	}
	old.start()
	f.start()
	lead = waitLeader(t, nodes, 3, 30*time.Second)
	if l, in := listed(); !l || !in {
		t.Fatalf("%s back: listed %v, in sync %v: %+v", id, l, in, lead.s.ha.status())
	}
}
