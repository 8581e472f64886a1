package consul

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Instance is one instance of a service whose health checks all pass.
type Instance struct {
	ID      string // service ID
	Node    string // Consul node the instance registered on
	Address string // service address, or the node's when it registered none
	Port    int
	Tags    []string
	Meta    map[string]string
}

// HostPort is the instance's address as host:port.
func (i Instance) HostPort() string { return net.JoinHostPort(i.Address, strconv.Itoa(i.Port)) }

func (i Instance) equal(o Instance) bool {
	return i.ID == o.ID && i.Node == o.Node && i.Address == o.Address && i.Port == o.Port &&
		slices.Equal(i.Tags, o.Tags) && maps.Equal(i.Meta, o.Meta)
}

// Healthy returns the instances of service whose checks all pass, only
// those tagged tag unless tag is empty.
func (c *Client) Healthy(ctx context.Context, service, tag string) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	in, _, err := c.healthy(service, tag, (&api.QueryOptions{}).WithContext(ctx))
	return in, err
}

// WatchHealthy calls fn with the healthy instances of service (only those
// tagged tag unless tag is empty): once when it first hears from Consul,
// then each time the set changes, until ctx ends; it then returns
// ctx.Err(). It waits by blocking query. While Consul is unreachable it
// retries with backoff and does not call fn: the last set stays the
// caller's view. fn runs on WatchHealthy's goroutine; a slow fn delays the
// next query, never loses a change.
func (c *Client) WatchHealthy(ctx context.Context, service, tag string, fn func([]Instance)) error {
	fetch := func(q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) {
		return c.healthy(service, tag, q)
	}
	return watch(ctx, c, "service "+service, fetch, sameInstances, fn)
}

// WatchHealthyStatus is WatchHealthy that also tells status how each
// query went: the error of a query that failed, nil after one that
// answered (changed or not; an unchanged blocking query answers about
// every Config.WaitTime). A caller that keeps a view of the healthy set
// learns from it how old that view may be: the set it last got stays
// true until a query fails. status runs on the watch's goroutine, before
// fn for the same answer.
func (c *Client) WatchHealthyStatus(ctx context.Context, service, tag string, fn func([]Instance), status func(error)) error {
	fetch := func(q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) {
		in, meta, err := c.healthy(service, tag, q)
		if ctx.Err() == nil {
			status(err)
		}
		return in, meta, err
	}
	return watch(ctx, c, "service "+service, fetch, sameInstances, fn)
}

func (c *Client) healthy(service, tag string, q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) {
	entries, meta, err := c.api.Health().Service(service, tag, true, q)
	if err != nil {
		return nil, nil, fmt.Errorf("consul: healthy instances of %s: %w", service, err)
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		in := Instance{
			ID:      e.Service.ID,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Tags:    e.Service.Tags,
			Meta:    e.Service.Meta,
		}
		if e.Node != nil {
			in.Node = e.Node.Node
			if in.Address == "" {
				in.Address = e.Node.Address
			}
		}
		out = append(out, in)
	}
	return sortedInstances(out), meta, nil
}

// watch is the blocking-query loop behind every watch: fetch waits (q
// carries WaitIndex and WaitTime) for a change, and fn hears each result
// that differs from the one before. Errors are retried with backoff.
func watch[T any](ctx context.Context, c *Client, what string,
	fetch func(q *api.QueryOptions) (T, *api.QueryMeta, error),
	same func(a, b T) bool, fn func(T)) error {
	var (
		index     uint64
		last      T
		delivered bool
		failures  int
		start     time.Time
	)
	for {
		// Consul's rate-limit advice: a loop whose queries stop blocking
		// (an index stuck at a value the server answers at once) must not
		// spin.
		if wait := c.cfg.RetryMin - time.Since(start); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		}
		start = time.Now()
		rctx, cancel := context.WithTimeout(ctx, c.cfg.WaitTime+c.cfg.WaitTime/16+c.cfg.RequestTimeout)
		v, meta, err := fetch((&api.QueryOptions{WaitIndex: index, WaitTime: c.cfg.WaitTime}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if failures == 0 {
				c.log.Warn("consul: watch", "what", what, "err", err)
			}
			d := jitter(backoff(failures, c.cfg.RetryMin, c.cfg.RetryMax))
			failures++
			// The server may be another one, or restarted, when it answers
			// again: start from a fresh read.
			index = 0
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		if failures > 0 {
			c.log.Info("consul: watch resumed", "what", what, "failures", failures)
			failures = 0
		}
		index = nextIndex(index, meta.LastIndex)
		if !delivered || !same(last, v) {
			last, delivered = v, true
			fn(v)
		}
	}
}
