package tests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reelfs/reelfs/consul/consultest"
	"github.com/reelfs/reelfs/lab"
)

// TestLabChaos is the bounded part of `make chaos`: the lab of vagrant/ as
// network namespaces (on 10.77.1.0/24 with prefix rlt-, so it does not
// meet a `make lab`), faults for $REELFS_CHAOS_TEST_DURATION (default
// 2m, the run on every CI build), then every acknowledged
// operation must be there. It needs root, ip, nsenter and /dev/fuse, and
// skips with the reason otherwise. It prints the seed, every fault and the
// summary table on stdout (make e2e runs it with -v, so a passing run
// shows them too); the logs of a failing run are kept (the path is
// printed).
func TestLabChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped in -short mode")
	}
	if err := lab.Preflight(); err != nil {
		t.Skipf("chaos: cannot build a netns lab here: %v", err)
	}
	consulBin, err := consultest.Binary()
	if err != nil {
		t.Skipf("chaos: no consul binary (make consul): %v", err)
	}
	duration := 2 * time.Minute
	if v := os.Getenv("REELFS_CHAOS_TEST_DURATION"); v != "" {
		if duration, err = time.ParseDuration(v); err != nil {
			t.Fatalf("REELFS_CHAOS_TEST_DURATION: %v", err)
		}
	}
	f, err := os.Open("../vagrant/hosts")
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := lab.ParseHosts(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	provision, err := filepath.Abs("../vagrant/provision.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "reelfs-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "rlt-"
	out := os.Stdout
	t.Cleanup(func() {
		if err := lab.Down(dir, prefix, out); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if t.Failed() {
			t.Logf("chaos: logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), duration+12*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{Dir: dir, Prefix: prefix, Hosts: lab.MoveSubnet(hosts, 1),
		Bin: reelfsBin, ConsulBin: consulBin, Provision: provision,
		Env: lab.ChaosEnv(), ChunkDisk: lab.ChaosDisk, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	res, err := lab.Chaos(ctx, l, lab.ChaosConfig{Duration: duration, Seed: seed, Out: out})
	if err != nil {
		t.Errorf("chaos (seed %d): %v", seed, err)
	}
	if res.Lost > 0 {
		t.Errorf("chaos (seed %d): %d acknowledged operations lost", seed, res.Lost)
	}
	// About one fault every 2 s is injected; a run with far fewer (or
	// with few operations) was stuck and proves nothing.
	minFaults := max(5, int(duration/(6*time.Second)))
	if res.Acked < 100 || res.TotalFaults() < minFaults {
		t.Errorf("chaos (seed %d): only %d operations acknowledged and %d faults (want 100 and %d): the run proves nothing",
			seed, res.Acked, res.TotalFaults(), minFaults)
	}
}
