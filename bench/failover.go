package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// failoverSection is issue 11: the same mount workloads against three
// metaservers with failover (every answer waits until both followers hold
// the change) and against one metaserver without it, in the same run,
// each with two chunkservers and a separate mount; then the time from
// kill -9 of the leader to the next acknowledged write, over several
// failovers.
func (r *runner) failoverSection(ctx context.Context) *table {
	t := &table{title: "metaserver failover (issue 11): 3 metaservers with --ha vs 1 metaserver, same run", baselines: []string{"1 metaserver"}}
	consulBin, err := findConsul(r.bin)
	if err != nil {
		t.notRun = err.Error()
		return t
	}
	var one, three *metaTopo
	err1 := t.setup("1 reelfs meta + 2 reelfs chunk + reelfs mount", func() error {
		var err error
		one, err = r.startMetaTopo(ctx, "fo-1meta", 1, "")
		return err
	})
	err3 := t.setup("Consul dev agent + 3 reelfs meta --ha + 2 reelfs chunk + reelfs mount", func() error {
		addr, err := r.startConsul(ctx, consulBin)
		if err != nil {
			return err
		}
		three, err = r.startMetaTopo(ctx, "fo-3meta", 3, addr)
		return err
	})
	pair := func(name string, goal *target, measure func(m *metaTopo) value) {
		rw := row{name: name, goal: goal}
		if three != nil {
			rw.reelfs = measure(three)
		} else {
			rw.reelfs = missing("%v", err3)
		}
		if one != nil {
			rw.base = []value{measure(one)}
		} else {
			rw.base = []value{missing("%v", err1)}
		}
		t.add(rw)
	}
	nCreates := r.count(5000, 300)
	limit := 3 * time.Minute
	reps := r.opt.reps
	for _, threads := range []int{1, 4} {
		s := map[*metaTopo]*series{one: {}, three: {}}
		for i := range reps {
			for _, m := range []*metaTopo{one, three} {
				if m == nil || ctx.Err() != nil {
					continue
				}
				dir := filepath.Join(m.mount, fmt.Sprintf("c%d-%d", threads, i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					s[m].add(0, err)
					continue
				}
				done, d, err := createMany(ctx, nCreates, threads, limit, func(_ context.Context, k int) error {
					return createEmpty(filepath.Join(dir, fmt.Sprintf("f%06d", k)))
				})
				s[m].addValue(createValue(nCreates, done, d, err, limit))
			}
		}
		pair(fmt.Sprintf("create %d empty files through the mount, %d thread(s), files/s", nCreates, threads), ratioAtLeast(0.7, 0),
			func(m *metaTopo) value { return s[m].value("files/s") })
	}
	n := r.count(2000, 50)
	content := make([]byte, n*64<<10)
	for i := range content {
		content[i] = byte(i*13 + i/4096)
	}
	small := map[*metaTopo]*series{one: {}, three: {}}
	for i := range reps {
		for _, m := range []*metaTopo{one, three} {
			if m == nil || ctx.Err() != nil {
				continue
			}
			small[m].addValue(smallWrite(ctx, filepath.Join(m.mount, fmt.Sprintf("small%d", i)), content, 64<<10, 5*time.Minute))
		}
	}
	pair(fmt.Sprintf("%d files of 64 KiB written + sync through the mount, files/s", n), ratioAtLeast(0.7, 0),
		func(m *metaTopo) value { return small[m].value("files/s") })

	// Failovers: kill -9 the leader, time the next acknowledged write.
	if three != nil {
		rounds := r.count(10, 3)
		var took []time.Duration
		var ferr error
		for i := range rounds {
			if ctx.Err() != nil {
				break
			}
			d, err := three.failover(ctx, i)
			if err != nil {
				ferr = err
				break
			}
			took = append(took, d)
			r.log.Info("failover", "round", i+1, "took", d)
		}
		slices.Sort(took)
		stat := func(p float64) value {
			if len(took) == 0 {
				return missing("%v", ferr)
			}
			return got(percentile(took, p).Seconds(), "s")
		}
		for _, p := range []struct {
			name string
			pct  float64
			goal *target
		}{{"median", 50, nil}, {"p90", 90, nil}, {"max", 100, nil}} {
			t.add(row{name: fmt.Sprintf("kill -9 of the leader to the next acknowledged write (%d failovers), %s", len(took), p.name),
				reelfs: stat(p.pct), base: []value{notApplicable()}, goal: p.goal})
		}
		if ferr != nil {
			t.note("failovers stopped early: %v", ferr)
		}
	}
	t.note("3 metaservers: `reelfs meta --ha` on one Consul dev agent; an answer waits until both followers fetched the change. 1 metaserver: `reelfs meta` alone. Both: 2 chunkservers (min-copies 2) and a separate `reelfs mount`, all on this machine.")
	t.note("%d reps per row, alternating between the clusters, median. Failover: `reelfs mkdir -p` retried from the kill until it succeeds, then the killed metaserver is restarted and the next round waits for 3 in sync.", reps)
	return t
}

// findConsul looks for the consul binary: $REELFS_CONSUL_BIN, next to the
// reelfs binary (make consul links bin/consul), then $PATH.
func findConsul(reelfsBin string) (string, error) {
	if p := os.Getenv("REELFS_CONSUL_BIN"); p != "" {
		return p, nil
	}
	if p := filepath.Join(filepath.Dir(reelfsBin), "consul"); fileExists(p) {
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("no consul binary: run `make consul` (or set REELFS_CONSUL_BIN)")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// startConsul starts a dev agent on free loopback ports and waits until
// it has elected itself.
func (r *runner) startConsul(ctx context.Context, bin string) (string, error) {
	ports, err := freeAddrs(4)
	if err != nil {
		return "", err
	}
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	dir := filepath.Join(r.dir, "consul")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p, err := startChild("consul", filepath.Join(r.dir, "consul.log"), "", nil, bin, "agent", "-dev",
		"-node", "reelfs-bench", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-data-dir", dir,
		"-http-port", port(ports[0]), "-serf-lan-port", port(ports[1]), "-serf-wan-port", port(ports[2]),
		"-server-port", port(ports[3]), "-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn")
	if err != nil {
		return "", err
	}
	r.atCleanup(func() { p.stop(30 * time.Second) })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get("http://" + ports[0] + "/v1/status/leader")
		if err == nil {
			var leader string
			json.NewDecoder(resp.Body).Decode(&leader)
			resp.Body.Close()
			if leader != "" {
				return ports[0], nil
			}
		}
		if p.exited() {
			return "", fmt.Errorf("consul exited: %s", p.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", errors.New("consul agent did not elect itself within 60s")
}

// metaTopo is metaservers, two chunkservers and a mount, as separate
// processes.
type metaTopo struct {
	r      *runner
	name   string
	dir    string
	consul string
	metas  []string
	procs  []*child
	starts int
	mount  string
}

func (m *metaTopo) list() string { return strings.Join(m.metas, ",") }

func (r *runner) startMetaTopo(ctx context.Context, name string, n int, consulAddr string) (*metaTopo, error) {
	addrs, err := freeAddrs(n + 2)
	if err != nil {
		return nil, err
	}
	m := &metaTopo{r: r, name: name, dir: filepath.Join(r.dir, name), consul: consulAddr, metas: addrs[:n],
		procs: make([]*child, n), mount: filepath.Join(r.dir, "mnt-"+name)}
	os.RemoveAll(m.dir)
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, err
	}
	var others []*child
	r.atCleanup(func() {
		for _, p := range others {
			p.stop(60 * time.Second)
		}
		forceUnmount(m.mount)
		for _, p := range m.procs {
			if p != nil {
				p.stop(30 * time.Second)
			}
		}
		if !r.opt.keep {
			os.RemoveAll(m.dir)
		}
	})
	for i := range n {
		if err := m.startMeta(ctx, i); err != nil {
			return nil, err
		}
	}
	for i, addr := range addrs[n:] {
		args := []string{r.bin, "chunk", "--dir", filepath.Join(m.dir, fmt.Sprintf("c%d", i)), "--listen", addr,
			"--group", "1", "--meta", m.list(), "--min-copies", "2", "--log-level", "warn"}
		if consulAddr != "" {
			args = append(args, "--consul", consulAddr)
		}
		p, err := startChild("reelfs chunk", filepath.Join(r.dir, fmt.Sprintf("%s-chunk%d.log", name, i)), "", nil, args...)
		if err != nil {
			return nil, err
		}
		others = append(others, p)
		if err := waitListening(ctx, addr, 30*time.Second, p); err != nil {
			return nil, err
		}
	}
	if err := m.waitHealthy(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	if err := forceUnmount(m.mount); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.mount, 0o755); err != nil {
		return nil, err
	}
	p, err := startChild("reelfs mount", filepath.Join(r.dir, name+"-mount.log"), "", nil,
		r.bin, "mount", "--meta", m.list(), "--log-level", "warn", m.mount)
	if err != nil {
		return nil, err
	}
	others = append(others, p)
	if err := waitMount(ctx, m.mount, true, 30*time.Second, p); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metaTopo) startMeta(ctx context.Context, i int) error {
	m.starts++
	args := []string{m.r.bin, "meta", "--dir", filepath.Join(m.dir, fmt.Sprintf("meta%d", i)), "--listen", m.metas[i], "--log-level", "warn"}
	if m.consul != "" {
		args = append(args, "--ha", "--consul", m.consul)
	}
	p, err := startChild("reelfs meta", filepath.Join(m.r.dir, fmt.Sprintf("%s-meta%d-%d.log", m.name, i, m.starts)), "", nil, args...)
	if err != nil {
		return err
	}
	m.procs[i] = p
	return waitListening(ctx, m.metas[i], 30*time.Second, p)
}

// waitHealthy waits until reelfs status exits 0 (a leader, every
// metaserver and chunkserver in sync).
func (m *metaTopo) waitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, err := exec.CommandContext(ctx, m.r.bin, "status", "--meta", m.list(), "--timeout", "2s").CombinedOutput()
		if err == nil {
			return nil
		}
		last = tail(string(out), 400)
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within %v: %s", m.name, limit, last)
}

// leader is the index of the leading metaserver, or -1.
func (m *metaTopo) leader() int {
	for i, a := range m.metas {
		resp, err := http.Get("http://" + a + wire.PathHA)
		if err != nil {
			continue
		}
		var st wire.MetaHA
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.Leading {
			return i
		}
	}
	return -1
}

// failover kills the leader and times the next acknowledged write, then
// restarts the killed metaserver and waits until all are in sync again.
func (m *metaTopo) failover(ctx context.Context, round int) (time.Duration, error) {
	lead := m.leader()
	if lead < 0 {
		return 0, errors.New("no leader")
	}
	m.procs[lead].cmd.Process.Kill()
	<-m.procs[lead].done
	killed := time.Now()
	var took time.Duration
	for attempt := 0; ; attempt++ {
		if time.Since(killed) > time.Minute || ctx.Err() != nil {
			return 0, fmt.Errorf("no write within a minute of killing the leader")
		}
		err := exec.CommandContext(ctx, m.r.bin, "mkdir", "-p", "--meta", m.list(), "/probe/"+strconv.Itoa(round)).Run()
		if err == nil {
			took = time.Since(killed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.startMeta(ctx, lead); err != nil {
		return 0, err
	}
	return took, m.waitHealthy(ctx, 90*time.Second)
}
