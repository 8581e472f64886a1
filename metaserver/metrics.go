package metaserver

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// metrics is the server's own Prometheus registry and the collectors the
// handler updates on every request.
type metrics struct {
	reg     *prometheus.Registry
	ops     *prometheus.CounterVec   // op, code
	replays prometheus.Counter       // retried changes answered without applying them again
	latency *prometheus.HistogramVec // op
	handler fasthttp.RequestHandler
}

func newMetrics(c *core) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "ops_total",
			Help: "Metadata requests by op and result code (OK or a wire error code).",
		}, []string{"op", "code"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "replayed_requests_total",
			Help: "Retried changes (same request id) answered without applying them again.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "op_seconds",
			Help:    "Time to answer a metadata request, by op.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 12),
		}, []string{"op"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: name, Help: help,
		}, f)
	}
	m.reg.MustRegister(
		m.replays,
		m.ops,
		m.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "synced_group_commits_total",
			Help: "Synced (fsync'd) writes, each covering every change that finished before it started.",
		}, func() float64 { return float64(c.syncer.flushes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "sync_requests_total",
			Help: "Requests that waited for a synced write (CommitReq.Sync, SetAttrReq.Sync).",
		}, func() float64 { return float64(c.syncer.requests()) }),
		gauge("delete_queue_blocks", "Blocks waiting in the deletion queue.", func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(c.ctr.queued)
		}),
		gauge("inodes", "Inodes in use, orphans included.", func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(c.ctr.inodes)
		}),
		gauge("orphans", "Unlinked inodes kept while open.", func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(len(c.orphans))
		}),
		gauge("sessions", "Live client sessions.", func() float64 {
			n, _ := c.openCount()
			return float64(n)
		}),
		gauge("healthy_chunkservers", "Chunkservers whose last heartbeat is within the heartbeat timeout.", func() float64 {
			return float64(c.tracker.healthyCount(c.clock()))
		}),
		gauge("oplog_last_seq", "Sequence number of the last op-log entry.", func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(c.ctr.seq)
		}),
	)
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return m
}
