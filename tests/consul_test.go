package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/reelfs/reelfs/consul/consultest"
	"github.com/reelfs/reelfs/internal/wire"
)

// TestConsul runs a metaserver and a group of three chunkservers
// registered with a real Consul dev agent, and checks what issue 11's
// "Registration and tracker" promises:
//   - every daemon (metaserver, chunkservers, httpd, live) registers, with
//     a passing health check;
//   - a chunkserver whose check fails (SIGSTOP: its HTTP check times out)
//     leaves the in-sync set and placement as soon as Consul marks it
//     critical (the metaserver's heartbeat timeout and replica lag time
//     are 30 s here, so nothing but Consul can explain a quick exit), and
//     writes go on with the other two; after SIGCONT it comes back;
//   - after the agent restarts with empty state every daemon registers
//     again by itself, and writes work through it;
//   - while the agent is down for longer than the tracker trusts its last
//     view (10 s), the tracker judges by heartbeats only: nobody leaves
//     the in-sync set and writes go on;
//   - SIGTERM deregisters each daemon.
func TestConsul(t *testing.T) {
	agent := consultest.Start(t) // skips without bin/consul
	ca := agent.Client()
	dir := t.TempDir()
	meta := freeAddr(t)
	mp := startProc(t, "meta", "--dir", filepath.Join(dir, "meta"), "--listen", meta, "--consul", agent.Addr,
		"--heartbeat-timeout", "30s", "--replica-lag-time", "30s", "--upload-grace", "1h")
	t.Cleanup(func() { mp.stop(t, 30*time.Second) })
	g := &group{t: t, dir: dir, meta: meta}
	g.startMembers(3, "--consul", agent.Addr)
	g.cl = &cluster{t: t, meta: meta}
	httpAddr, liveAddr := freeAddr(t), freeAddr(t)
	hp := startProc(t, "httpd", "--meta", meta, "--listen", httpAddr, "--consul", agent.Addr)
	t.Cleanup(func() { hp.stop(t, 30*time.Second) })
	lp := startProc(t, "live", "--meta", meta, "--listen", liveAddr, "--media", freeUDPAddr(t), "--consul", agent.Addr,
		"--record-dir", "")
	t.Cleanup(func() { lp.stop(t, 30*time.Second) })
	defer func() {
		if t.Failed() {
			t.Logf("metaserver log:\n%s", tail(mp.log.String(), 6000))
		}
	}()

	// passing lists the ids of the passing instances of service.
	passing := func(service string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		entries, _, err := ca.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
		slices.Sort(ids)
		return ids
	}
	allRegistered := func() bool {
		return len(passing("reelfs-meta")) == 1 && len(passing("reelfs-chunk")) == 3 &&
			len(passing("reelfs-httpd")) == 1 && len(passing("reelfs-live")) == 1
	}
	eventually(t, 30*time.Second, "meta, 3 chunkservers, httpd and live registered and passing", allRegistered)
	g.waitInSync(3, 30*time.Second)
	entries, _, err := ca.Health().Service("reelfs-chunk", "group-1", true, nil)
	if err != nil || len(entries) != 3 {
		t.Fatalf("reelfs-chunk tagged group-1: %d entries, %v", len(entries), err)
	}
	member := map[string]string{} // address -> member id, from Consul
	for _, e := range entries {
		member[fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port)] = e.Service.Meta["member"]
	}
	for _, m := range g.groups().Members {
		if member[m.Addr] != m.ID {
			t.Errorf("Consul has member %q at %s, the tracker %q", member[m.Addr], m.Addr, m.ID)
		}
	}

	// The health endpoints the agent checks need no secret and say one word.
	for _, addr := range []string{meta, g.addrs[0]} {
		resp, err := http.Get("http://" + addr + wire.PathHealth)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "ok" {
			t.Errorf("GET %s%s: %d %q", addr, wire.PathHealth, resp.StatusCode, b)
		}
	}

	src := filepath.Join(dir, "a.bin")
	sum := writeRandomFile(t, src, 9<<20, 1)
	g.cl.mustCLI("put", src, "/a.bin")

	// A chunkserver whose check fails.
	victim := g.addrs[2]
	vid := member[victim]
	checkStatus := func() string {
		checks, _, err := ca.Health().Checks("reelfs-chunk", nil)
		if err != nil {
			return ""
		}
		for _, c := range checks {
			if c.ServiceID == "reelfs-chunk-"+victim {
				return c.Status
			}
		}
		return "absent"
	}
	out := func() bool {
		grp := g.groups()
		if slices.Contains(grp.ISR, vid) || len(grp.Members) != 3 {
			return false
		}
		for _, m := range grp.Members {
			if m.ID == vid && m.Healthy {
				return false
			}
		}
		return true
	}
	stopped := time.Now()
	if err := g.procs[2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Poll both every 50 ms and note when each was first seen.
	var critical, left time.Time
	for critical.IsZero() || left.IsZero() {
		if time.Since(stopped) > 15*time.Second {
			t.Fatalf("15s after SIGSTOP: Consul critical at %v, out of the in-sync set at %v (zero: not seen)",
				critical.Sub(stopped), left.Sub(stopped))
		}
		if critical.IsZero() && checkStatus() == api.HealthCritical {
			critical = time.Now()
		}
		if left.IsZero() && out() {
			left = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("SIGSTOP -> Consul critical %v; -> out of the in-sync set and placement %v (%v after critical, 50 ms polls; heartbeat timeout 30s)",
		critical.Sub(stopped).Round(time.Millisecond), left.Sub(stopped).Round(time.Millisecond), left.Sub(critical).Round(time.Millisecond))
	if d := left.Sub(critical); d > 3*time.Second {
		t.Errorf("left the in-sync set %v after Consul marked it critical, want within 3s", d)
	}
	src2 := filepath.Join(dir, "b.bin")
	sum2 := writeRandomFile(t, src2, 9<<20, 2)
	start := time.Now()
	g.cl.mustCLI("put", src2, "/b.bin")
	t.Logf("put of 9 MiB with two of three members: %v", time.Since(start).Round(time.Millisecond))
	for i, want := range map[string]string{"/a.bin": sum, "/b.bin": sum2} {
		got := filepath.Join(dir, "got"+strings.ReplaceAll(i, "/", "-"))
		g.cl.mustCLI("get", i, got)
		if s := sha256File(t, got); s != want {
			t.Errorf("%s: sha256 %s, want %s", i, s, want)
		}
	}
	if err := g.procs[2].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cont := time.Now()
	g.waitInSync(3, 30*time.Second)
	t.Logf("SIGCONT -> back in the in-sync set: %v", time.Since(cont).Round(time.Millisecond))

	// The agent restarts with empty state: everyone registers again.
	agent.Restart()
	restarted := time.Now()
	src3 := filepath.Join(dir, "c.bin")
	sum3 := writeRandomFile(t, src3, 5<<20, 3)
	g.cl.mustCLI("put", src3, "/c.bin") // while daemons are registering again
	eventually(t, 30*time.Second, "every daemon registered again after the agent restart", allRegistered)
	t.Logf("agent restart -> meta, 3 chunkservers, httpd and live registered and passing again: %v", time.Since(restarted).Round(time.Millisecond))
	// Past the tracker's grace, Consul's view counts again: nobody leaves.
	time.Sleep(9 * time.Second)
	if isr := g.groups().ISR; len(isr) != 3 {
		t.Errorf("in-sync set after the agent restart and the grace: %v, want 3 members", isr)
	}
	src4 := filepath.Join(dir, "d.bin")
	sum4 := writeRandomFile(t, src4, 5<<20, 4)
	g.cl.mustCLI("put", src4, "/d.bin")
	for p, want := range map[string]string{"/c.bin": sum3, "/d.bin": sum4} {
		got := filepath.Join(dir, "got"+strings.ReplaceAll(p, "/", "-"))
		g.cl.mustCLI("get", p, got)
		if s := sha256File(t, got); s != want {
			t.Errorf("%s: sha256 %s, want %s", p, s, want)
		}
	}

	// The agent is down longer than the tracker trusts its last view: the
	// tracker falls back to heartbeats, nobody leaves, writes go on.
	// The fall-back comes --consul-stale (10 s) after the watch's first
	// error, and errors are retried up to 3 s apart (more under load),
	// so the agent stays down until the metaserver says it fell back,
	// at least 12 s and at most 40 s.
	agent.Stop()
	down := time.Now()
	fellBack := func() bool { return strings.Contains(mp.log.String(), "judging chunkservers by heartbeats only") }
	for time.Since(down) < 12*time.Second || (!fellBack() && time.Since(down) < 40*time.Second) {
		if isr := g.groups().ISR; len(isr) != 3 {
			t.Fatalf("in-sync set %v %v after the agent stopped, want 3 members", isr, time.Since(down).Round(time.Millisecond))
		}
		time.Sleep(250 * time.Millisecond)
	}
	src5 := filepath.Join(dir, "e.bin")
	sum5 := writeRandomFile(t, src5, 5<<20, 5)
	g.cl.mustCLI("put", src5, "/e.bin")
	if !fellBack() {
		t.Errorf("the metaserver did not log its fall-back to heartbeats within %v of the agent stopping", time.Since(down).Round(time.Millisecond))
	}
	agent.Restart()
	restarted = time.Now()
	eventually(t, 30*time.Second, "every daemon registered again after the agent came back", allRegistered)
	t.Logf("agent back after %v down -> everyone registered and passing again: %v",
		restarted.Sub(down).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if time.Since(restarted) > 10*time.Second {
		for _, p := range append([]*proc{mp, hp, lp}, g.procs...) {
			t.Logf("reelfs %s log:\n%s", p.name, tail(p.log.String(), 3000))
		}
	}
	got5 := filepath.Join(dir, "got-e.bin")
	g.cl.mustCLI("get", "/e.bin", got5)
	if s := sha256File(t, got5); s != sum5 {
		t.Errorf("/e.bin: sha256 %s, want %s", s, sum5)
	}

	// SIGTERM deregisters.
	registered := func(id string) bool {
		services, err := ca.Agent().Services()
		if err != nil {
			t.Fatalf("agent services: %v", err)
		}
		_, ok := services[id]
		return ok
	}
	g.stop(0)
	if registered("reelfs-chunk-" + g.addrs[0]) {
		t.Errorf("chunkserver %s still registered after SIGTERM", g.addrs[0])
	}
	hp.stop(t, 30*time.Second)
	lp.stop(t, 30*time.Second)
	if registered("reelfs-httpd-"+httpAddr) || registered("reelfs-live-"+liveAddr) {
		t.Errorf("httpd or live still registered after SIGTERM")
	}
	for i := 1; i < 3; i++ {
		g.stop(i)
	}
	mp.stop(t, 30*time.Second)
	services, err := ca.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 0 {
		t.Errorf("services left after every daemon stopped: %v", services)
	}
}
