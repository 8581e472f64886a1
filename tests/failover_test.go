package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/consul/consultest"
	"github.com/reelfs/reelfs/internal/wire"
)

// metaSet is three `reelfs meta --ha` processes sharing a Consul agent.
type metaSet struct {
	t      *testing.T
	consul string
	addrs  []string
	dirs   []string
	procs  []*proc
	all    []*proc // every process started, restarts included, for the logs
	hc     *fasthttp.Client
}

func (m *metaSet) list() string { return strings.Join(m.addrs, ",") }

func (m *metaSet) start(i int) {
	m.procs[i] = startProc(m.t, "meta", "--ha", "--consul", m.consul, "--dir", m.dirs[i], "--listen", m.addrs[i],
		"--heartbeat-timeout", "4s", "--upload-grace", "1h")
	m.all = append(m.all, m.procs[i])
}

// status asks metaserver i for its view of failover (nil when it does
// not answer).
func (m *metaSet) status(i int) *wire.MetaHA {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + m.addrs[i] + wire.PathHA)
	if err := m.hc.DoTimeout(req, resp, time.Second); err != nil || resp.StatusCode() != 200 {
		return nil
	}
	var st wire.MetaHA
	if json.Unmarshal(resp.Body(), &st) != nil {
		return nil
	}
	return &st
}

// leader is the index of the one metaserver that leads with an in-sync
// set of at least isr members, or -1.
func (m *metaSet) leader(isr int) int {
	found := -1
	for i := range m.addrs {
		if p := m.procs[i]; p == nil || p.exited() {
			continue
		}
		if st := m.status(i); st != nil && st.Leading {
			if found >= 0 || len(st.ISR) < isr {
				return -1
			}
			found = i
		}
	}
	return found
}

func (m *metaSet) waitLeader(isr int, d time.Duration) int {
	m.t.Helper()
	i := -1
	eventually(m.t, d, fmt.Sprintf("one metaserver leading with %d in sync", isr), func() bool {
		i = m.leader(isr)
		return i >= 0
	})
	return i
}

// ledgerOp is one acknowledged change of the workload.
type ledger struct {
	mu    sync.Mutex
	files map[string]string // path -> sha256 of its content, for files that must exist
	gone  map[string]bool   // paths that must not exist
	acked int
}

func (l *ledger) put(p, sum string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.files[p] = sum
	delete(l.gone, p)
	l.acked++
}

func (l *ledger) move(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.files[to] = l.files[from]
	delete(l.files, from)
	l.gone[from] = true
	delete(l.gone, to)
	l.acked++
}

func (l *ledger) remove(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.files, p)
	l.gone[p] = true
	l.acked++
}

// worker runs creates (with content), renames and unlinks in its own
// directory until stop, recording each acknowledged one. Any error is a
// failure: the client retries through a failover by itself.
func worker(ctx context.Context, c *client.Client, w int, l *ledger, stop <-chan struct{}) error {
	dir := fmt.Sprintf("/w%d", w)
	if _, err := c.MkdirAll(ctx, dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(w), 7))
	var live []string
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		switch op := rng.IntN(10); {
		case op < 6 || len(live) < 3:
			p := fmt.Sprintf("%s/f%06d", dir, i)
			data := make([]byte, 1+rng.IntN(96<<10))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			f, err := c.CreatePath(ctx, p, 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
			if err != nil {
				return fmt.Errorf("create %s: %w", p, err)
			}
			if _, err := f.WriteAt(ctx, data, 0); err != nil {
				f.Close(ctx)
				return fmt.Errorf("write %s: %w", p, err)
			}
			if err := f.Close(ctx); err != nil {
				return fmt.Errorf("close %s: %w", p, err)
			}
			sum := sha256.Sum256(data)
			l.put(p, hex.EncodeToString(sum[:]))
			live = append(live, p)
		case op < 8:
			k := rng.IntN(len(live))
			to := fmt.Sprintf("%s/r%06d", dir, i)
			if err := c.RenamePath(ctx, live[k], to); err != nil {
				return fmt.Errorf("rename %s: %w", live[k], err)
			}
			l.move(live[k], to)
			live[k] = to
		default:
			k := rng.IntN(len(live))
			if err := c.RemovePath(ctx, live[k], false); err != nil {
				return fmt.Errorf("unlink %s: %w", live[k], err)
			}
			l.remove(live[k])
			live = slices.Delete(live, k, k+1)
		}
	}
	return nil
}

// TestMetaFailover runs three metaservers with failover, a group of
// three chunkservers, a separate mount and SDK writers, all on one Consul
// agent, and checks issue 11's promises under kill -9 and SIGSTOP of the
// leader: a new leader serves within seconds (the distribution is
// logged), every acknowledged create/rename/unlink is there afterwards
// and none twice, a large cp through the mount completes across a
// failover with an equal sha256, a stopped leader steps down and rejoins
// as a follower, and a restarted follower catches up.
func TestMetaFailover(t *testing.T) {
	agent := consultest.Start(t)
	dir := t.TempDir()
	ms := &metaSet{t: t, consul: agent.Addr, hc: &fasthttp.Client{}}
	for i := range 3 {
		ms.addrs = append(ms.addrs, freeAddr(t))
		ms.dirs = append(ms.dirs, filepath.Join(dir, fmt.Sprintf("meta%d", i+1)))
		ms.procs = append(ms.procs, nil)
		ms.start(i)
	}
	t.Cleanup(func() {
		for _, p := range ms.procs {
			if p != nil && !p.exited() {
				p.cmd.Process.Signal(syscall.SIGCONT)
				p.stop(t, 30*time.Second)
			}
		}
	})
	var mnt *mountProc
	defer func() {
		if !t.Failed() {
			return
		}
		// Keep every log whole: a failover's story spans all of them.
		keep, err := os.MkdirTemp("", "reelfs-failover-logs-")
		if err != nil {
			return
		}
		for i, p := range ms.all {
			addr := ""
			for j, a := range p.cmd.Args {
				if a == "--listen" && j+1 < len(p.cmd.Args) {
					addr = p.cmd.Args[j+1]
				}
			}
			os.WriteFile(filepath.Join(keep, fmt.Sprintf("meta-%02d-%s.log", i, addr)), []byte(p.log.String()), 0o644)
		}
		if mnt != nil {
			os.WriteFile(filepath.Join(keep, "mount.log"), []byte(mnt.log.String()), 0o644)
		}
		t.Logf("logs kept in %s", keep)
	}()
	ms.waitLeader(3, 60*time.Second)

	g := &group{t: t, dir: dir, meta: ms.list()}
	g.startMembers(3, "--consul", agent.Addr)

	cfg := client.DefaultConfig()
	cfg.Meta = ms.list()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	eventually(t, 60*time.Second, "a group of 3 in sync", func() bool {
		gs, err := c.Groups(ctx)
		return err == nil && len(gs) == 1 && len(gs[0].ISR) == 3
	})

	// A separate mount, for the large cp across a failover.
	if fuseUsable() {
		mnt = startMount(t, &cluster{t: t, meta: ms.list()}, filepath.Join(dir, "mnt"))
	}

	l := &ledger{files: map[string]string{}, gone: map[string]bool{}}
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := worker(ctx, c, w, l, stop); err != nil {
				errs <- err
			}
		}()
	}
	var stopOnce sync.Once
	stopWork := func() { stopOnce.Do(func() { close(stop) }) }
	workerFailed := func() {
		select {
		case err := <-errs:
			stopWork()
			wg.Wait()
			t.Fatalf("workload: %v", err)
		default:
		}
	}

	// The cp runs across the first failovers.
	var (
		cpDone = make(chan error, 1)
		cpSum  string
		cpSrc  = filepath.Join(dir, "big.bin")
	)
	if mnt != nil {
		cpSum = writeRandomFile(t, cpSrc, 384<<20, 11)
		go func() {
			out, err := exec.Command("cp", cpSrc, filepath.Join(mnt.dir, "big.bin")).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			cpDone <- err
		}()
	}

	rounds := 10
	if s := os.Getenv("REELFS_FAILOVERS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 100 {
			rounds = n
		}
	}
	probe := func(name string) error {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := c.MkdirAll(pctx, "/probe/"+name, 0o755)
		return err
	}
	var took []time.Duration
	for r := range rounds {
		time.Sleep(700 * time.Millisecond)
		workerFailed()
		lead := ms.waitLeader(3, 60*time.Second)
		killed := time.Now()
		ms.procs[lead].kill()
		if err := probe(fmt.Sprintf("k%d", r)); err != nil {
			t.Fatalf("round %d: no write after killing the leader: %v", r, err)
		}
		d := time.Since(killed)
		took = append(took, d)
		next := ms.leader(1)
		t.Logf("failover %d: killed %s, %s serves after %v", r, ms.addrs[lead], ms.addrs[max(next, 0)], d.Round(time.Millisecond))
		ms.start(lead)
	}
	workerFailed()

	// SIGSTOP the leader past its session: another takes over; the
	// stopped one, resumed, acknowledges nothing more, steps down and
	// rejoins as a follower.
	lead := ms.waitLeader(3, 60*time.Second)
	old := ms.status(lead)
	ms.procs[lead].cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	if err := probe("stopped"); err != nil {
		t.Fatalf("no write while the leader is stopped: %v", err)
	}
	t.Logf("leader %s stopped: another serves after %v", ms.addrs[lead], time.Since(stopped).Round(time.Millisecond))
	time.Sleep(12 * time.Second) // past the session TTL (10 s)
	ms.procs[lead].cmd.Process.Signal(syscall.SIGCONT)
	eventually(t, 20*time.Second, "the resumed leader steps down", func() bool {
		st := ms.status(lead)
		return st != nil && !st.Leading && st.Epoch > old.Epoch
	})
	// It refuses changes (NOTLEADER naming the leader).
	err = wire.Call(ctx, ms.hc, ms.addrs[lead], wire.PathMeta+wire.OpMkdir, "",
		&wire.CreateReq{Parent: wire.RootIno, Name: "from-stale", Mode: wire.ModeDir | 0o755}, nil)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeNotLeader || we.Leader == "" {
		t.Fatalf("a change sent to the deposed leader: %v", err)
	}
	eventually(t, 60*time.Second, "the deposed leader back in the in-sync set", func() bool {
		return ms.leader(3) >= 0
	})

	stopWork()
	wg.Wait()
	workerFailed()
	if mnt != nil {
		select {
		case err := <-cpDone:
			if err != nil {
				t.Fatalf("cp across failovers: %v\nmount log:\n%s", err, tail(mnt.log.String(), 6000))
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("cp across failovers did not finish")
		}
		if got := sha256File(t, filepath.Join(mnt.dir, "big.bin")); got != cpSum {
			t.Fatalf("cp across failovers: sha256 %s, want %s", got, cpSum)
		}
	}

	// Check the ledger against the namespace.
	check := func() {
		for p, sum := range l.files {
			f, err := c.OpenPath(ctx, p, os.O_RDONLY)
			if err != nil {
				t.Fatalf("acknowledged file %s: %v", p, err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f.IO(ctx), 0, f.Size())); err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			f.Close(ctx)
			if got := hex.EncodeToString(h.Sum(nil)); got != sum {
				t.Fatalf("%s: sha256 %s, acknowledged %s", p, got, sum)
			}
		}
		for p := range l.gone {
			if _, err := c.Resolve(ctx, p); err == nil {
				t.Fatalf("%s was acknowledged as renamed or removed, and exists", p)
			}
		}
		// Nothing applied twice: each worker directory holds exactly the
		// ledger's files.
		for w := range 3 {
			d, err := c.Resolve(ctx, fmt.Sprintf("/w%d", w))
			if err != nil {
				t.Fatal(err)
			}
			ents, err := c.ReadDirAll(ctx, d.Ino)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				p := fmt.Sprintf("/w%d/%s", w, e.Name)
				if _, ok := l.files[p]; !ok {
					t.Fatalf("%s exists but no acknowledged op left it there", p)
				}
			}
		}
	}
	check()
	slices.Sort(took)
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	t.Logf("%d ops acknowledged, %d files checked; failover (kill -9 to the next acknowledged write) over %d rounds: min %v median %v p90 %v max %v mean %v",
		l.acked, len(l.files), len(took), took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond),
		took[len(took)*9/10].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), (sum / time.Duration(len(took))).Round(time.Millisecond))
	if out := os.Getenv("REELFS_FAILOVER_OUT"); out != "" {
		var b bytes.Buffer
		for _, d := range took {
			fmt.Fprintf(&b, "%.3f\n", d.Seconds())
		}
		os.WriteFile(out, b.Bytes(), 0o644)
	}

	// reelfs status names the leader and its epoch, and says degraded
	// (exit 1) while a follower is out of the in-sync set.
	lead = ms.waitLeader(3, 60*time.Second)
	status := func() (statusOut, int) {
		cmd := exec.Command(reelfsBin, "status", "--meta", ms.list(), "--json")
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var st statusOut
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status --json: %v: %s", err, out)
		}
		return st, code
	}
	eventually(t, 20*time.Second, "status: healthy, naming the leader", func() bool {
		st, code := status()
		return code == 0 && st.Metaservers != nil && st.Metaservers.Leader == ms.addrs[lead] && st.Metaservers.Leading
	})
	// A follower killed and restarted catches up; the members converge.
	f := (lead + 1) % 3
	ms.procs[f].kill()
	if err := probe("follower-down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "status: degraded with a metaserver out of sync", func() bool {
		st, code := status()
		return code == 1 && strings.Contains(strings.Join(st.Health.Problems, ";"), "not in the in-sync set")
	})
	converged := func() bool {
		if ms.leader(3) < 0 {
			return false
		}
		var seqs []uint64
		for i := range 3 {
			st := ms.status(i)
			if st == nil {
				return false
			}
			seqs = append(seqs, st.LastSeq)
		}
		return seqs[0] == seqs[1] && seqs[1] == seqs[2]
	}
	ms.start(f)
	eventually(t, 60*time.Second, "restarted follower back in sync with equal logs", converged)
	// A follower wiped clean (a new disk) resyncs from a snapshot of the
	// leader, joins under a new node id, and holds the namespace.
	lead = ms.waitLeader(3, 60*time.Second)
	f = (lead + 2) % 3
	ms.procs[f].kill()
	if err := os.RemoveAll(ms.dirs[f]); err != nil {
		t.Fatal(err)
	}
	ms.start(f)
	eventually(t, 60*time.Second, "wiped follower resynced and in sync", converged)
	if !strings.Contains(ms.procs[f].log.String(), "resynced") {
		t.Fatalf("the wiped follower did not resync from a snapshot:\n%s", tail(ms.procs[f].log.String(), 3000))
	}
	// It could lead: kill the leader until it does, then check the ledger
	// against it.
	for range 4 {
		if st := ms.status(f); st != nil && st.Leading {
			break
		}
		lead = ms.waitLeader(3, 60*time.Second)
		ms.procs[lead].kill()
		if err := probe(fmt.Sprintf("to-wiped-%d", lead)); err != nil {
			t.Fatal(err)
		}
		ms.start(lead)
		eventually(t, 60*time.Second, "all in sync again", converged)
	}
	check()
}

// statusOut is the part of reelfs status --json this test reads.
type statusOut struct {
	Health struct {
		State    string   `json:"state"`
		Problems []string `json:"problems"`
	} `json:"health"`
	Metaservers *wire.MetaHA `json:"metaservers"`
}

// fuseUsable reports whether this test run can mount.
func fuseUsable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return false
	}
	_, err := exec.LookPath("fusermount3")
	return err == nil
}
