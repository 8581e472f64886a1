package chunkserver

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/reelfs/reelfs/internal/wire"
)

// metrics are the chunkserver's Prometheus metrics, in a registry of its
// own so that several servers in one process (tests, the all-in-one
// server) never collide.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	bytesRead      prometheus.Counter
	bytesWritten   prometheus.Counter
	checksumErrors prometheus.Counter
	blockSeconds   *prometheus.HistogramVec
	handler        fasthttp.RequestHandler

	// replication
	shippedBlocks  prometheus.Counter
	shippedBytes   prometheus.Counter
	shippedDeletes prometheus.Counter
	shipErrors     prometheus.Counter
	ackSeconds     prometheus.Histogram
	scrubBytes     prometheus.Counter
	scrubPasses    prometheus.Counter
	scrubDamaged   prometheus.Counter
	repairs        *prometheus.CounterVec
}

// newMetrics registers the metrics; the gauges read live values from s.
func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfs_chunk_requests_total",
			Help: "HTTP requests by endpoint, method and status code.",
		}, []string{"op", "method", "code"}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_chunk_read_bytes_total",
			Help: "Block bytes served by GET.",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_chunk_written_bytes_total",
			Help: "Block bytes stored by PUT.",
		}),
		checksumErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_chunk_checksum_errors_total",
			Help: "Reads that found a block failing its CRC32C or trailer checks.",
		}),
		blockSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reelfs_chunk_block_seconds",
			Help: "Time to handle a block request up to its reply: for GET the read and checksum check, for PUT the write and fsyncs (the body is sent after).",
			// 100 µs to ~3.3 s: a warm read to a PUT stuck behind a slow disk.
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 16),
		}, []string{"method"}),
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.shippedBlocks = counter("reelfs_chunk_shipped_blocks_total", "Blocks copied from peers' binlogs (and inventory resyncs).")
	m.shippedBytes = counter("reelfs_chunk_shipped_bytes_total", "Bytes of blocks copied from peers.")
	m.shippedDeletes = counter("reelfs_chunk_shipped_deletes_total", "Deletes applied from peers' binlogs.")
	m.shipErrors = counter("reelfs_chunk_ship_errors_total", "Failed rounds of following a peer's binlog (each is retried).")
	m.scrubBytes = counter("reelfs_chunk_scrub_bytes_total", "Bytes the scrubber verified.")
	m.scrubPasses = counter("reelfs_chunk_scrub_passes_total", "Full scrub passes finished.")
	m.scrubDamaged = counter("reelfs_chunk_scrub_damaged_total", "Blocks the scrubber found failing their checksums.")
	m.repairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reelfs_chunk_repairs_total",
		Help: "Damaged copies replaced from a peer (result=repaired) or that no peer could replace (result=unrepairable).",
	}, []string{"result"})
	m.ackSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "reelfs_chunk_ack_wait_seconds",
		Help:    "Time a PUT waited, after its local write, for the in-sync set to hold the block.",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 18),
	})
	lagOf := func(f func(wire.Follower) uint64) func() float64 {
		return func() float64 {
			var worst uint64
			for _, r := range s.followers.report(s.binlog.Last(), s.bytesAfter) {
				worst = max(worst, f(r))
			}
			return float64(worst)
		}
	}
	m.reg.MustRegister(
		m.shippedBlocks, m.shippedBytes, m.shippedDeletes, m.shipErrors, m.ackSeconds,
		m.scrubBytes, m.scrubPasses, m.scrubDamaged, m.repairs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_follower_lag_entries",
			Help: "Entries of this member's binlog the furthest-behind follower still lacks.",
		}, lagOf(func(r wire.Follower) uint64 { return r.Behind })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_follower_lag_bytes",
			Help: "Bytes of puts the furthest-behind follower still lacks.",
		}, lagOf(func(r wire.Follower) uint64 { return r.BehindBytes })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_isr_size",
			Help: "Members in this member's group's in-sync set, as the tracker last said.",
		}, func() float64 { return float64(len(s.followers.currentView().isr)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_resyncing",
			Help: "1 while this member copies a peer's inventory.",
		}, func() float64 {
			for _, src := range s.shipper.report() {
				if src.Resync {
					return 1
				}
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_scrub_last_pass_timestamp_seconds",
			Help: "Unix time the last full scrub pass ended (0: none yet).",
		}, func() float64 { return float64(s.scrub.snapshot().LastPass) / 1e9 }),
		m.requests, m.bytesRead, m.bytesWritten, m.checksumErrors, m.blockSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_used_bytes",
			Help: "Data bytes held in blocks.",
		}, func() float64 { return float64(s.store.Usage().Used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_free_bytes",
			Help: "Bytes new blocks may still take on this member's disk: available minus --reserve, as the tracker places by (0 when statfs fails).",
		}, func() float64 {
			space, err := s.store.DiskSpace()
			if err != nil {
				return 0
			}
			return float64(space.Free(s.cfg.Reserve))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_capacity_bytes",
			Help: "Size of the file system holding this member's blocks (0 when statfs fails).",
		}, func() float64 {
			space, err := s.store.DiskSpace()
			if err != nil {
				return 0
			}
			return float64(space.Capacity)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_blocks",
			Help: "Blocks stored.",
		}, func() float64 { return float64(s.store.Usage().Blocks) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_inflight_requests",
			Help: "Block requests being served (the load reported to the tracker).",
		}, func() float64 { return float64(s.inflight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_binlog_waiters",
			Help: "Binlog long-polls waiting for new entries.",
		}, func() float64 { return float64(s.polling.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_binlog_seq",
			Help: "Newest durable binlog sequence number.",
		}, func() float64 { return float64(s.binlog.Last()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return m
}

// observe counts one finished request.
func (m *metrics) observe(op string, method []byte, status int) {
	m.requests.WithLabelValues(op, methodLabel(method), strconv.Itoa(status)).Inc()
}

// methodLabel bounds the label values a client can create.
func methodLabel(method []byte) string {
	switch string(method) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPut, fasthttp.MethodDelete, fasthttp.MethodPost:
		return string(method)
	}
	return "OTHER"
}
