package client

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/internal/wire"
	"github.com/reelfs/reelfs/metaserver"
)

// cluster is an in-process metaserver and one group of chunkservers on
// loopback ports, torn down by t.Cleanup.
type cluster struct {
	t        testing.TB
	metaDir  string
	metaAddr string
	metaStop func()
	chunks   []*testChunk
	hc       *fasthttp.Client
	tweak    func(*metaserver.Config) // applied at every metaserver start
}

type testChunk struct {
	srv  *chunkserver.Server
	dir  string
	addr string
	stop func()
}

type clusterOpts struct {
	chunkservers int
	reserve      uint64 // chunkserver Reserve (huge: a full cluster)
	readDirLimit int
	meta         func(*metaserver.Config) // changes to the metaserver's config
}

func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	if o.chunkservers == 0 {
		o.chunkservers = 2
	}
	cl := &cluster{t: t, metaDir: t.TempDir(), hc: &fasthttp.Client{}, tweak: o.meta}
	cl.startMeta("127.0.0.1:0", o.readDirLimit)
	for i := 0; i < o.chunkservers; i++ {
		cfg := chunkserver.DefaultConfig()
		cfg.Dir = t.TempDir()
		cfg.Listen = "127.0.0.1:0"
		cfg.ID = fmt.Sprintf("cs%d", i+1)
		cfg.Group = 1
		cfg.Meta = cl.metaAddr
		cfg.Reserve = o.reserve
		cfg.HeartbeatEvery = 50 * time.Millisecond
		cfg.MinCopies = min(o.chunkservers, 2)
		srv, err := chunkserver.New(cfg)
		if err != nil {
			t.Fatalf("chunkserver: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		tc := &testChunk{srv: srv, dir: cfg.Dir, addr: srv.Addr()}
		var once sync.Once
		tc.stop = func() { // idempotent: a test may stop it before the cleanup
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("chunkserver %s: %v", tc.addr, err)
				}
			})
		}
		t.Cleanup(tc.stop)
		cl.chunks = append(cl.chunks, tc)
	}
	cl.waitHealthy(o.chunkservers)
	return cl
}

// startMeta starts the metaserver on addr (port 0 the first time, the
// same address on a restart) over the cluster's directory.
func (cl *cluster) startMeta(addr string, readDirLimit int) {
	t := cl.t
	cfg := metaserver.DefaultConfig()
	cfg.Dir = cl.metaDir
	cfg.Listen = addr
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.GCInterval = 100 * time.Millisecond
	if readDirLimit > 0 {
		cfg.ReadDirLimit = readDirLimit
	}
	if cl.tweak != nil {
		cl.tweak(&cfg)
	}
	var srv *metaserver.Server
	var err error
	for try := 0; try < 50; try++ { // a restart may race the old listener's close
		if srv, err = metaserver.New(cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("metaserver: %v", err)
	}
	cl.metaAddr = srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stopped := false
	cl.metaStop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metaserver: %v", err)
		}
	}
	t.Cleanup(cl.metaStop)
}

// restartMeta stops the metaserver and starts it again on the same
// address after pause, in the background; the returned channel closes
// once it serves again.
func (cl *cluster) restartMeta(pause time.Duration) <-chan struct{} {
	addr := cl.metaAddr
	cl.metaStop()
	up := make(chan struct{})
	go func() {
		time.Sleep(pause)
		cl.startMeta(addr, 0)
		close(up)
	}()
	return up
}

func (cl *cluster) waitHealthy(n int) {
	cl.t.Helper()
	c := cl.client(nil)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		groups, err := c.Groups(context.Background())
		healthy := 0
		if err == nil {
			for _, g := range groups {
				for _, m := range g.Members {
					if m.Healthy && (m.InSync || m.Full) {
						healthy++
					}
				}
			}
		}
		if healthy >= n {
			return
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("chunkservers not healthy: %d of %d (err %v)", healthy, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client returns a Client of the cluster, closed by t.Cleanup (after
// the test's own Close, which is then a no-op).
func (cl *cluster) client(tweak func(*Config)) *Client {
	cl.t.Helper()
	cfg := DefaultConfig()
	cfg.Meta = cl.metaAddr
	cfg.RetryTimeout = 20 * time.Second
	cfg.SessionEvery = 200 * time.Millisecond
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		cl.t.Fatalf("client: %v", err)
	}
	cl.t.Cleanup(func() { c.Close() })
	return c
}

// blocks lists the block ids a chunkserver holds.
func (cl *cluster) blocks(tc *testChunk) map[uint64]bool {
	cl.t.Helper()
	out := make(map[uint64]bool)
	after := uint64(0)
	for {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		req.SetRequestURI(fmt.Sprintf("http://%s%s?after=%d&limit=1000", tc.addr, wire.PathBlocks, after))
		err := cl.hc.DoTimeout(req, resp, 10*time.Second)
		var list wire.BlockList
		if err == nil && resp.StatusCode() == 200 {
			err = json.Unmarshal(resp.Body(), &list)
		} else if err == nil {
			err = fmt.Errorf("status %d", resp.StatusCode())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		if err != nil {
			cl.t.Fatalf("list blocks of %s: %v", tc.addr, err)
		}
		for _, b := range list.Blocks {
			out[b.ID] = true
			after = b.ID
		}
		if !list.More {
			return out
		}
	}
}

// metrics is the Prometheus text a chunkserver serves.
func (cl *cluster) metrics(t testing.TB, addr string) string {
	t.Helper()
	st, body, err := cl.hc.Get(nil, "http://"+addr+"/metrics")
	if err != nil || st != fasthttp.StatusOK {
		t.Fatalf("metrics of %s: %d, %v", addr, st, err)
	}
	return string(body)
}

// allBlocks is the union of every chunkserver's blocks.
func (cl *cluster) allBlocks() map[uint64]bool {
	out := make(map[uint64]bool)
	for _, tc := range cl.chunks {
		for id := range cl.blocks(tc) {
			out[id] = true
		}
	}
	return out
}

// blockFile finds the file of block id on a chunkserver's disk.
func (tc *testChunk) blockFile(id uint64) (string, bool) {
	var found string
	filepath.WalkDir(tc.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == wire.BlockName(id) {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	return found, found != ""
}

// corrupt flips one byte in the middle of a file.
func corrupt(t testing.TB, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func crcHex(c *Client, b []byte) string { return fmt.Sprintf("%08x", crc32.Checksum(b, c.crc)) }
