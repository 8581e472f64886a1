package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cluster is a running `reelfs server` (metaserver, two chunkservers of
// one group, optionally httpd and a FUSE mount) with its data in dir.
type cluster struct {
	r       *runner
	name    string
	dir     string
	meta    string
	chunks  []string
	http    string // empty: no httpd
	mount   string // empty: no mount
	proc    *child
	started int // how many times the process was started, for log names
}

// startCluster starts a server on fresh loopback ports. Its data goes to
// r.dir/name; the process and mount are torn down by r.cleanup.
func (r *runner) startCluster(ctx context.Context, name string, withHTTP bool, mount string) (*cluster, error) {
	return r.startClusterN(ctx, name, withHTTP, mount, 2)
}

// startClusterN is startCluster with n chunkservers in the group (each
// keeps a copy of every block; with one, blocks have one copy).
func (r *runner) startClusterN(ctx context.Context, name string, withHTTP bool, mount string, n int) (*cluster, error) {
	addrs, err := freeAddrs(2 + n)
	if err != nil {
		return nil, err
	}
	c := &cluster{r: r, name: name, dir: filepath.Join(r.dir, name), meta: addrs[0], chunks: addrs[2:], mount: mount}
	if withHTTP {
		c.http = addrs[1]
	}
	// A kept --dir of an earlier run must not leak its namespace in.
	if err := os.RemoveAll(c.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	r.atCleanup(func() {
		if err := c.stop(); err != nil {
			r.log.Warn("stop cluster", "name", name, "err", err)
		}
		if !r.opt.keep {
			os.RemoveAll(c.dir)
		}
	})
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cluster) start(ctx context.Context) error {
	c.started++
	args := []string{c.r.bin, "server", "--dir", c.dir, "--meta-listen", c.meta,
		"--chunkservers", strconv.Itoa(len(c.chunks)), "--chunk-listen", strings.Join(c.chunks, ","),
		"--http-listen", c.http, "--log-level", "warn", "--live-listen="}
	if c.mount != "" {
		if err := forceUnmount(c.mount); err != nil {
			return err
		}
		if err := os.MkdirAll(c.mount, 0o755); err != nil {
			return err
		}
		args = append(args, "--mount", c.mount)
	}
	logPath := filepath.Join(c.r.dir, fmt.Sprintf("%s-server-%d.log", c.name, c.started))
	p, err := startChild("reelfs server", logPath, "Press Ctrl-C", nil, args...)
	if err != nil {
		return err
	}
	c.proc = p
	if err := p.waitReady(ctx, 90*time.Second); err != nil {
		c.stop()
		return err
	}
	if c.mount != "" {
		if err := waitMount(ctx, c.mount, true, 30*time.Second, p); err != nil {
			c.stop()
			return err
		}
	}
	return nil
}

// stop ends the server (SIGTERM: it unmounts and flushes) and makes sure
// its mount point is gone.
func (c *cluster) stop() error {
	var err error
	if c.proc != nil {
		err = c.proc.stop(60 * time.Second)
		c.proc = nil
	}
	if c.mount != "" {
		if uerr := forceUnmount(c.mount); uerr != nil && err == nil {
			err = uerr
		}
	}
	return err
}

// restartCold stops the server, drops the page cache and starts it again:
// no cache of the process, the kernel's FUSE state or the disk survives.
func (c *cluster) restartCold(ctx context.Context) error {
	if err := c.stop(); err != nil {
		return err
	}
	if err := c.r.dropCaches(); err != nil {
		return err
	}
	return c.start(ctx)
}

// env is the environment of reelfs client commands against c.
func (c *cluster) env() []string { return []string{"REELFS_META=" + c.meta} }
