package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// sepHTTPD is `reelfs httpd` as a process of its own against a cluster:
// the way a streaming front end on its own machine serves a cluster,
// reading every block over TCP.
type sepHTTPD struct {
	c       *cluster
	addr    string
	proc    *child
	started int
}

// startSeparateHTTPD starts a `reelfs httpd` of c on a free port;
// r.cleanup stops it (before c: cleanups run newest first).
func (r *runner) startSeparateHTTPD(ctx context.Context, c *cluster) (*sepHTTPD, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return nil, err
	}
	h := &sepHTTPD{c: c, addr: addrs[0]}
	r.atCleanup(func() {
		if err := h.stop(); err != nil {
			r.log.Warn("stop reelfs httpd", "err", err)
		}
	})
	return h, h.start(ctx)
}

func (h *sepHTTPD) start(ctx context.Context) error {
	h.started++
	logPath := filepath.Join(h.c.r.dir, fmt.Sprintf("%s-httpd-%d.log", h.c.name, h.started))
	p, err := startChild("reelfs httpd", logPath, "", h.c.env(), h.c.r.bin, "httpd", "--listen", h.addr, "--log-level", "warn")
	if err != nil {
		return err
	}
	h.proc = p
	if err := waitListening(ctx, h.addr, 30*time.Second, p); err != nil {
		h.stop()
		return err
	}
	return nil
}

func (h *sepHTTPD) stop() error {
	if h.proc == nil {
		return nil
	}
	err := h.proc.stop(30 * time.Second)
	h.proc = nil
	return err
}

// restartCold stops the httpd and the server, drops the page cache and
// starts both again.
func (h *sepHTTPD) restartCold(ctx context.Context) error {
	if err := h.stop(); err != nil {
		return err
	}
	if err := h.c.restartCold(ctx); err != nil {
		return err
	}
	return h.start(ctx)
}
