package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/metaserver"
)

// testCluster is an in-process metaserver and one group of chunkservers on
// loopback ports, torn down by t.Cleanup; the commands under test run
// in-process against it through run.
type testCluster struct {
	t        *testing.T
	meta     string
	stopMeta func()
	chunks   []func() // stop each chunkserver
}

func newTestCluster(t *testing.T, chunkservers int) *testCluster {
	t.Helper()
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir = t.TempDir()
	mcfg.Listen = "127.0.0.1:0"
	mcfg.HeartbeatTimeout = time.Second
	mcfg.GCInterval = 100 * time.Millisecond
	ms, err := metaserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, meta: ms.Addr()}
	tc.stopMeta = runStoppable(t, "metaserver", ms.Run)
	for i := 0; i < chunkservers; i++ {
		cfg := chunkserver.DefaultConfig()
		cfg.Dir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		cfg.ID = fmt.Sprintf("cs%d", i+1)
		cfg.Group = 1
		cfg.Meta = tc.meta
		cfg.HeartbeatEvery = 50 * time.Millisecond
		cfg.MinCopies = min(chunkservers, 2)
		cs, err := chunkserver.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.chunks = append(tc.chunks, runStoppable(t, "chunkserver "+cfg.ID, cs.Run))
	}
	// healthy: every member up and in sync
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := tc.run("status"); code == statusHealthy {
			break
		}
		if time.Now().After(deadline) {
			out, errOut, code := tc.run("status")
			t.Fatalf("cluster not healthy in 30s: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return tc
}

// runStoppable runs fn until the returned function (idempotent, also
// called by t.Cleanup) cancels it and waits for it.
func runStoppable(t *testing.T, what string, fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", what, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// run runs one reelfs command line in-process with REELFS_META set to the
// cluster; it returns stdout, stderr and the exit status.
func (tc *testCluster) run(args ...string) (string, string, int) {
	return runWith(tc.meta, nil, args...)
}

// mustRun runs a command that must exit 0.
func (tc *testCluster) mustRun(args ...string) string {
	tc.t.Helper()
	out, errOut, code := tc.run(args...)
	if code != 0 {
		tc.t.Fatalf("reelfs %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func runWith(meta string, stdin []byte, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	getenv := func(k string) string {
		if k == "REELFS_META" {
			return meta
		}
		return ""
	}
	code := run(ctx, args, bytes.NewReader(stdin), &out, &errOut, getenv)
	return out.String(), errOut.String(), code
}
