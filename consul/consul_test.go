package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/reelfs/reelfs/consul/consultest"
)

// These tests run against a real `consul agent -dev` (see consultest); they
// skip when no consul binary was built (make consul).

// testConfig is DefaultConfig pointed at agent, with short waits so a test
// never sits in a long blocking query.
func testConfig(t *testing.T, agent *consultest.Agent) Config {
	cfg := DefaultConfig()
	cfg.Address = agent.Addr
	cfg.Logger = slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.SyncInterval = 300 * time.Millisecond
	cfg.WaitTime = 5 * time.Second
	cfg.RetryMax = time.Second
	return cfg
}

func newClient(t *testing.T, agent *consultest.Agent) *Client {
	t.Helper()
	c, err := New(testConfig(t, agent))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
	once sync.Once
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		w.t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// healthServer answers the agent's HTTP checks: 200 while ok, 503 after.
type healthServer struct {
	ok  atomic.Bool
	URL string
}

func newHealthServer(t *testing.T) *healthServer {
	h := &healthServer{}
	h.ok.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.ok.Load() {
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/v1/health"
	return h
}

// run starts fn in a goroutine and returns a stop function that cancels
// it and returns its error; the test's cleanup stops it too.
func run(t *testing.T, fn func(ctx context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// eventually polls cond every 100ms until it is true or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last error: %v)", what, limit, last)
}

func service(name, id string, port int, h *healthServer, tags ...string) Service {
	return Service{Name: name, ID: id, Address: "127.0.0.1", Port: port, Tags: tags,
		Meta: map[string]string{"version": "test"}, CheckURL: h.URL}
}

func register(t *testing.T, c *Client, svc Service) (*Registration, func() error) {
	t.Helper()
	reg, err := c.NewRegistration(svc)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, reg.Run)
	select {
	case <-reg.Registered():
	case <-time.After(20 * time.Second):
		t.Fatalf("service %s not registered within 20s", svc.ID)
	}
	return reg, stop
}

func healthyIDs(t *testing.T, c *Client, name, tag string) ([]string, error) {
	in, err := c.Healthy(context.Background(), name, tag)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in))
	for i, x := range in {
		ids[i] = x.ID
	}
	return ids, nil
}

func wantHealthy(t *testing.T, c *Client, name, tag string, want ...string) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("healthy %s = %v", name, want), func() (bool, error) {
		ids, err := healthyIDs(t, c, name, tag)
		return err == nil && fmt.Sprint(ids) == fmt.Sprint(want), err
	})
}

func TestRegisterHealthCheck(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := newHealthServer(t)
	_, stop := register(t, c, service("reelfs-chunk", "chunk-1", 7001, h, "group-a"))

	wantHealthy(t, c, "reelfs-chunk", "group-a", "chunk-1")
	in, err := c.Healthy(context.Background(), "reelfs-chunk", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := in[0]; got.HostPort() != "127.0.0.1:7001" || got.Node != agent.Node || got.Meta["version"] != "test" {
		t.Errorf("instance = %+v", got)
	}
	wantHealthy(t, c, "reelfs-chunk", "group-b") // wrong tag: none

	h.ok.Store(false)
	start := time.Now()
	wantHealthy(t, c, "reelfs-chunk", "")
	t.Logf("failing check seen after %v", time.Since(start).Round(time.Millisecond))
	h.ok.Store(true)
	wantHealthy(t, c, "reelfs-chunk", "", "chunk-1")

	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	services, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services["chunk-1"]; ok {
		t.Error("service still registered after Run returned")
	}
}

func TestWatchHealthy(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	updates := make(chan []string, 100)
	run(t, func(ctx context.Context) error {
		return c.WatchHealthy(ctx, "reelfs-meta", "", func(in []Instance) {
			ids := []string{}
			for _, x := range in {
				ids = append(ids, x.ID)
			}
			updates <- ids
		})
	})
	want := func(ids ...string) {
		t.Helper()
		w := fmt.Sprint(append([]string{}, ids...))
		timeout := time.After(15 * time.Second)
		for {
			select {
			case got := <-updates:
				t.Logf("watch: %v", got)
				if fmt.Sprint(got) == w {
					return
				}
			case <-timeout:
				t.Fatalf("watch did not deliver %s within 15s", w)
			}
		}
	}
	want() // the first answer: nobody yet

	ha, hb := newHealthServer(t), newHealthServer(t)
	_, stopA := register(t, c, service("reelfs-meta", "meta-a", 7101, ha))
	want("meta-a")
	_, _ = register(t, c, service("reelfs-meta", "meta-b", 7102, hb))
	want("meta-a", "meta-b")
	if err := stopA(); err != nil { // deregisters
		t.Fatal(err)
	}
	want("meta-b")
	hb.ok.Store(false)
	want()
	hb.ok.Store(true)
	want("meta-b")
}

func TestKVCheckAndSet(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	ctx := context.Background()
	type state struct {
		Epoch uint64
		ISR   []string
	}
	const key = "reelfs/test/state"

	var got state
	if _, err := c.GetJSON(ctx, key, &got); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJSON of a missing key = %v, want ErrNotFound", err)
	}
	if err := c.CASJSON(ctx, key, state{Epoch: 1, ISR: []string{"a"}}, 0); err != nil {
		t.Fatalf("create with CAS 0: %v", err)
	}
	if err := c.CASJSON(ctx, key, state{Epoch: 9}, 0); !errors.Is(err, ErrCASConflict) {
		t.Fatalf("second create with CAS 0 = %v, want ErrCASConflict", err)
	}
	idx, err := c.GetJSON(ctx, key, &got)
	if err != nil || got.Epoch != 1 || len(got.ISR) != 1 {
		t.Fatalf("GetJSON = %+v, %d, %v", got, idx, err)
	}
	// Two writers read the same version; only the first CAS wins.
	if err := c.CASJSON(ctx, key, state{Epoch: 2, ISR: []string{"a", "b"}}, idx); err != nil {
		t.Fatalf("CAS at the read index: %v", err)
	}
	if err := c.CASJSON(ctx, key, state{Epoch: 2, ISR: []string{"a", "c"}}, idx); !errors.Is(err, ErrCASConflict) {
		t.Fatalf("CAS at a stale index = %v, want ErrCASConflict", err)
	}

	// A blocking read returns when another writer changes the key.
	var cur state
	e, err := c.WaitJSON(ctx, key, 0, &cur)
	if err != nil || !e.Found || cur.Epoch != 2 {
		t.Fatalf("WaitJSON(0) = %+v, %+v, %v", e, cur, err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		c.PutJSON(ctx, key, state{Epoch: 3})
	}()
	start := time.Now()
	e2, err := c.WaitJSON(ctx, key, e.Index, &cur)
	if err != nil || cur.Epoch != 3 || e2.ModifyIndex <= e.ModifyIndex {
		t.Fatalf("blocking WaitJSON = %+v, %+v, %v", e2, cur, err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("WaitJSON returned after %v, before the change", waited)
	}
	if err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if e3, err := c.WaitJSON(ctx, key, e2.Index, &cur); err != nil || e3.Found {
		t.Fatalf("WaitJSON after delete = %+v, %v", e3, err)
	}
}

// contender is a daemon that registers itself and runs for the lock.
type contender struct {
	name   string
	health *healthServer
	reg    *Registration
	lock   *Lock
}

func newContender(t *testing.T, c *Client, name string, port int, key string) *contender {
	h := newHealthServer(t)
	reg, _ := register(t, c, service("reelfs-meta", name, port, h))
	lock, err := c.NewLock(LockOptions{Key: key, Holder: fmt.Sprintf("127.0.0.1:%d", port), CheckID: reg.CheckID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Release(context.Background()) })
	return &contender{name: name, health: h, reg: reg, lock: lock}
}

func TestLockFailover(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	const key = "reelfs/test/leader"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	leaders := make(chan Leader, 100)
	run(t, func(ctx context.Context) error {
		return c.WatchLeader(ctx, key, func(l Leader) { leaders <- l })
	})

	a := newContender(t, c, "meta-a", 7201, key)
	b := newContender(t, c, "meta-b", 7202, key)
	type won struct {
		who  *contender
		lost <-chan struct{}
		err  error
		at   time.Time
	}
	wins := make(chan won, 2)
	for _, x := range []*contender{a, b} {
		go func() {
			lost, err := x.lock.Acquire(ctx)
			wins <- won{x, lost, err, time.Now()}
		}()
	}
	first := <-wins
	if first.err != nil {
		t.Fatalf("Acquire: %v", first.err)
	}
	leader, follower := first.who, a
	if leader == a {
		follower = b
	}
	t.Logf("%s leads", leader.name)
	select {
	case w := <-wins:
		t.Fatalf("both contenders hold the lock: %s then %s (err %v)", leader.name, w.who.name, w.err)
	case <-time.After(2 * time.Second):
	}
	if err := leader.lock.Err(); err != nil {
		t.Fatalf("leader's Err = %v", err)
	}
	if _, err := follower.lock.Session(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower's Session error = %v, want ErrNotLeader", err)
	}
	got, err := c.Leader(ctx, key)
	if err != nil || got.Address != "127.0.0.1:7201" && got.Address != "127.0.0.1:7202" || !got.Held() {
		t.Fatalf("Leader = %+v, %v", got, err)
	}

	// Only the holder's session may write under leadership.
	if err := leader.lock.CASJSON(ctx, "reelfs/test/epoch", 1, 0); err != nil {
		t.Fatalf("leader's CASJSON: %v", err)
	}
	if err := leader.lock.CASJSON(ctx, "reelfs/test/epoch", 2, 0); !errors.Is(err, ErrCASConflict) {
		t.Fatalf("leader's CASJSON at a stale index = %v, want ErrCASConflict", err)
	}
	if err := follower.lock.CASJSON(ctx, "reelfs/test/epoch", 2, 0); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower's CASJSON = %v, want ErrNotLeader", err)
	}

	// The leader's process "dies": its health check fails. Consul
	// invalidates its session, the key is released, and after the
	// lock-delay the follower takes it.
	killed := time.Now()
	leader.health.ok.Store(false)
	select {
	case <-first.lost:
		t.Logf("old leader noticed the loss after %v: %v", time.Since(killed).Round(time.Millisecond), leader.lock.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("old leader's lost channel not closed within 20s")
	}
	if err := leader.lock.Err(); !errors.Is(err, ErrLockLost) {
		t.Errorf("old leader's Err = %v, want ErrLockLost", err)
	}
	var second won
	select {
	case second = <-wins:
	case <-time.After(20 * time.Second):
		t.Fatal("follower did not take over within 20s")
	}
	if second.err != nil || second.who != follower {
		t.Fatalf("second Acquire: %s, %v", second.who.name, second.err)
	}
	t.Logf("failover: %s leads %v after the old leader's check started failing", follower.name, second.at.Sub(killed).Round(time.Millisecond))

	if err := leader.lock.CASJSON(ctx, "reelfs/test/epoch", 3, 0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("old leader's CASJSON = %v, want ErrNotLeader", err)
	}
	var now Leader
	deadline := time.After(10 * time.Second)
	for now.Address != fmt.Sprintf("127.0.0.1:%d", map[*contender]int{a: 7201, b: 7202}[follower]) || !now.Held() {
		select {
		case now = <-leaders:
			t.Logf("watch: leader %+v", now)
		case <-deadline:
			t.Fatalf("WatchLeader did not report %s as leader", follower.name)
		}
	}

	// A clean step-down releases the key at once (no lock-delay) and
	// followers see that nobody leads.
	if err := follower.lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.lost:
	default:
		t.Error("Release did not close the lost channel")
	}
	if err := follower.lock.Err(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Err after Release = %v, want ErrNotLeader", err)
	}
	for now.Held() {
		select {
		case now = <-leaders:
		case <-time.After(10 * time.Second):
			t.Fatal("WatchLeader did not report the release")
		}
	}
	// The old leader recovered: it may run again and wins at once.
	leader.health.ok.Store(true)
	start := time.Now()
	if _, err := leader.lock.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s acquired again after %v", leader.name, time.Since(start).Round(time.Millisecond))
}

func TestLockLostWhenConsulGone(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newContender(t, c, "meta-a", 7301, "reelfs/test/leader")
	lost, err := a.lock.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agent.Stop()
	stopped := time.Now()
	select {
	case <-lost:
		t.Logf("lost %v after the agent stopped: %v", time.Since(stopped).Round(time.Millisecond), a.lock.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("leadership not given up within 20s of Consul going away")
	}
	if err := a.lock.Err(); !errors.Is(err, ErrLockLost) {
		t.Errorf("Err = %v, want ErrLockLost", err)
	}
}

func TestAgentRestartReregisters(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	h := newHealthServer(t)
	register(t, c, service("reelfs-httpd", "httpd-1", 7401, h))

	updates := make(chan int, 100)
	run(t, func(ctx context.Context) error {
		return c.WatchHealthy(ctx, "reelfs-httpd", "", func(in []Instance) { updates <- len(in) })
	})
	wantCount := func(n int) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case got := <-updates:
				if got == n {
					return
				}
			case <-timeout:
				t.Fatalf("watch did not report %d healthy instances within 30s", n)
			}
		}
	}
	wantCount(1)

	restarted := time.Now()
	agent.Restart() // comes back empty
	if _, _, err := agent.Client().Agent().Service("httpd-1", nil); err == nil {
		t.Log("already registered again when the restarted agent became ready")
	}
	eventually(t, 30*time.Second, "service registered again", func() (bool, error) {
		_, _, err := agent.Client().Agent().Service("httpd-1", nil)
		return err == nil, err
	})
	t.Logf("registered again %v after the agent restarted", time.Since(restarted).Round(time.Millisecond))
	wantHealthy(t, c, "reelfs-httpd", "", "httpd-1")
	// The watch may or may not have seen the set go empty (it may have
	// been backing off for the whole restart), so it owes no report yet.
	// A second instance is a change it can only report if it lived
	// through the restart (its index went backwards).
	register(t, c, service("reelfs-httpd", "httpd-2", 7402, h))
	wantCount(2)
}

// TestLockAcrossAgentRestart: an agent that comes back empty has no
// session and no key. The holder gives leadership up, its registration
// comes back, and it can lead again.
func TestLockAcrossAgentRestart(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newContender(t, c, "meta-a", 7501, "reelfs/test/leader")
	lost, err := a.lock.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	agent.Restart()
	select {
	case <-lost:
		t.Logf("lost %v after the restart began: %v", time.Since(restarted).Round(time.Millisecond), a.lock.Err())
	case <-time.After(20 * time.Second):
		t.Fatal("leadership survived an agent that lost every session")
	}
	if _, err := a.lock.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("leading again %v after the restart began", time.Since(restarted).Round(time.Millisecond))
	if ld, err := c.Leader(ctx, "reelfs/test/leader"); err != nil || ld.Address != "127.0.0.1:7501" || !ld.Held() {
		t.Fatalf("Leader = %+v, %v", ld, err)
	}
}

// TestLockEligible: a contender that is not eligible (a metaserver outside
// the in-sync set) never takes a free key, and takes it once it is.
func TestLockEligible(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	h := newHealthServer(t)
	reg, _ := register(t, c, service("reelfs-meta", "meta-a", 7601, h))
	var eligible atomic.Bool
	asked := make(chan struct{}, 100)
	lock, err := c.NewLock(LockOptions{
		Key: "reelfs/test/leader", Holder: "127.0.0.1:7601", CheckID: reg.CheckID(),
		Eligible: func(context.Context) (bool, error) {
			select {
			case asked <- struct{}{}:
			default:
			}
			return eligible.Load(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Release(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := lock.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ineligible Acquire = %v, want context.DeadlineExceeded", err)
	}
	if len(asked) == 0 {
		t.Fatal("Eligible was never asked")
	}
	if ld, err := c.Leader(context.Background(), "reelfs/test/leader"); err != nil || ld.Held() {
		t.Fatalf("an ineligible contender holds the key: %+v, %v", ld, err)
	}
	eligible.Store(true)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	if _, err := lock.Acquire(ctx2); err != nil {
		t.Fatalf("eligible Acquire: %v", err)
	}
}

// TestLockRestartedHolder: a leader killed and restarted within a
// second never fails its check (the new process answers it), so the dead
// process's session, bound to that check, would hold the key until Consul
// reaps its TTL (10 s, up to 20 s). A chaos run saw 20 s without a
// metaserver leader that way. The restarted process at the same address
// ends that session and takes the key after the lock-delay.
func TestLockRestartedHolder(t *testing.T) {
	agent := consultest.Start(t)
	c := newClient(t, agent)
	const key = "reelfs/test/leader"
	h := newHealthServer(t)
	reg, _ := register(t, c, service("reelfs-meta", "meta-a", 7701, h))
	// The dead process's session: bound to the (passing) check, holding
	// the key, renewed by nobody.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var old string
	for i := 0; i < 100 && old == ""; i++ { // the check may not pass yet
		id, _, err := c.api.Session().Create(&api.SessionEntry{
			Name: "reelfs lock " + key, Behavior: api.SessionBehaviorRelease, TTL: "10s", LockDelay: time.Second,
			NodeChecks: []string{"serfHealth"}, ServiceChecks: []api.ServiceCheck{{ID: reg.CheckID()}},
		}, nil)
		if err == nil {
			old = id
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if old == "" {
		t.Fatal("no session bound to the passing check")
	}
	if ok, _, err := c.api.KV().Acquire(&api.KVPair{Key: key, Value: []byte("127.0.0.1:7701"), Session: old}, nil); !ok || err != nil {
		t.Fatalf("the old process's acquire: %v, %v", ok, err)
	}

	// Another contender at another address waits: the key is held.
	other := newContender(t, c, "meta-b", 7702, key)
	octx, ocancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if _, err := other.lock.Acquire(octx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("another address took a live-looking session's key: %v", err)
	}
	ocancel()

	restarted, err := c.NewLock(LockOptions{Key: key, Holder: "127.0.0.1:7701", CheckID: reg.CheckID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restarted.Release(context.Background()) })
	start := time.Now()
	if _, err := restarted.Acquire(ctx); err != nil {
		t.Fatalf("restarted holder's Acquire: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the restarted holder took the key after %v: the old session lived on", d)
	} else {
		t.Logf("restarted holder took the key after %v", d.Round(time.Millisecond))
	}
	if se, _, err := c.api.Session().Info(old, nil); err != nil || se != nil {
		t.Fatalf("old session still exists: %+v, %v", se, err)
	}
}
