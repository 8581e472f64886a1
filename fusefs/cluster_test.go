package fusefs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/metaserver"
)

// needFUSE skips a test that has to mount: that takes /dev/fuse,
// fusermount3 and root (the tests also use other uids and mknod).
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount tests need root (they mount, switch uids and make device-free special files)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("mount tests need /dev/fuse: %v", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skipf("mount tests need fusermount3: %v", err)
	}
}

// testLogger writes Warn and above to the test log, so failures that the
// filesystem logs show up next to the failing test.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// cluster is a metaserver and chunkservers of one group, in process.
type cluster struct {
	meta string // metaserver address
}

// startCluster runs a metaserver and n chunkservers until the test ends.
// reserve is the free space each chunkserver keeps back.
func startCluster(t *testing.T, n int, reserve uint64) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, n+1)
	started := 0
	t.Cleanup(func() {
		cancel()
		for i := 0; i < started; i++ {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("cluster: %v", err)
			}
		}
	})

	mcfg := metaserver.DefaultConfig()
	mcfg.Dir = t.TempDir()
	mcfg.Listen = "127.0.0.1:0"
	mcfg.Logger = testLogger(t).With("daemon", "meta")
	meta, err := metaserver.New(mcfg)
	if err != nil {
		t.Fatalf("metaserver: %v", err)
	}
	started++
	go func() { done <- meta.Run(ctx) }()

	for i := 0; i < n; i++ {
		ccfg := chunkserver.DefaultConfig()
		ccfg.Dir = t.TempDir()
		ccfg.Listen = "127.0.0.1:0"
		ccfg.Meta = meta.Addr()
		ccfg.Group = 1
		ccfg.Reserve = reserve
		ccfg.HeartbeatEvery = 100 * time.Millisecond
		ccfg.MinCopies = min(n, 2)
		ccfg.Logger = testLogger(t).With("daemon", "chunk", "n", i+1)
		cs, err := chunkserver.New(ccfg)
		if err != nil {
			t.Fatalf("chunkserver %d: %v", i+1, err)
		}
		started++
		go func() { done <- cs.Run(ctx) }()
	}

	// Wait until every chunkserver has heartbeated and joined the
	// in-sync set.
	c := newClient(t, &cluster{meta: meta.Addr()})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for {
		healthy := 0
		if groups, err := c.Groups(wctx); err == nil {
			for _, g := range groups {
				for _, m := range g.Members {
					if m.Healthy && (m.InSync || m.Full) {
						healthy++
					}
				}
			}
		}
		if healthy >= n {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("chunkservers not healthy: %d of %d", healthy, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return &cluster{meta: meta.Addr()}
}

// newClient is a client of cl, closed when the test ends.
func newClient(t *testing.T, cl *cluster) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Meta = cl.meta
	cfg.SessionEvery = 200 * time.Millisecond
	cfg.RetryTimeout = 10 * time.Second
	cfg.Logger = testLogger(t).With("daemon", "client")
	c, err := client.New(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("client close: %v", err)
		}
	})
	return c
}

// mounted is a mount made for a test.
type mounted struct {
	dir string
	fs  *FS
	reg *prometheus.Registry
}

// mountTest mounts c in a temporary directory and unmounts it when the
// test ends. Attribute and entry caching are long, so the tests show that
// consistency comes from the open-time checks, not from timeouts running
// out.
func mountTest(t *testing.T, c *client.Client) *mounted {
	t.Helper()
	return mountWith(t, c, func(*Options) {})
}

// mountWith is mountTest with options changed by set.
func mountWith(t *testing.T, c *client.Client, set func(*Options)) *mounted {
	t.Helper()
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	opt := DefaultOptions()
	opt.EntryTimeout = time.Hour
	opt.AttrTimeout = time.Hour
	opt.AllowOther = true
	opt.Logger = testLogger(t).With("daemon", "fuse")
	opt.Metrics = reg
	set(&opt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Mount(ctx, c, dir, opt)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		m.Wait()
	})
	return &mounted{dir: dir, fs: m, reg: reg}
}

// ops is how many times the mount served op (all results).
func (m *mounted) ops(t *testing.T, op string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "reelfs_fuse_ops_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					total += mt.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}
