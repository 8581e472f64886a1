package chunkserver

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
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
	m.reg.MustRegister(
		m.requests, m.bytesRead, m.bytesWritten, m.checksumErrors, m.blockSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reelfs_chunk_used_bytes",
			Help: "Data bytes held in blocks.",
		}, func() float64 { return float64(s.store.Usage().Used) }),
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
