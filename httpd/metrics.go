package httpd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, registered on its own
// registry and served at /-/metrics.
type metrics struct {
	requests      *prometheus.CounterVec // by method and status code
	bytesSent     prometheus.Counter     // body bytes handed to connections
	bytesReceived prometheus.Counter     // upload body bytes stored
	rangeRequests *prometheus.CounterVec // by kind: single, multi, unsatisfiable, ignored
	activeStreams prometheus.Gauge       // streamed bodies in flight
	rangeStart    prometheus.Histogram   // range start / file size
	farRanges     prometheus.Counter     // ranges starting past half the file: seeks
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfs_httpd_requests_total",
			Help: "HTTP requests answered, by method and status code.",
		}, []string{"method", "code"}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_httpd_sent_bytes_total",
			Help: "Response body bytes handed to client connections.",
		}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_httpd_received_bytes_total",
			Help: "Upload body bytes written to files.",
		}),
		rangeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfs_httpd_range_requests_total",
			Help: "GET requests with a Range header, by outcome: single, multi, unsatisfiable, ignored.",
		}, []string{"kind"}),
		activeStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reelfs_httpd_active_streams",
			Help: "Response bodies being streamed from files now.",
		}),
		rangeStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reelfs_httpd_range_start_ratio",
			Help:    "Start offset of served byte ranges relative to the file size.",
			Buckets: prometheus.LinearBuckets(0.1, 0.1, 10),
		}),
		farRanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reelfs_httpd_far_ranges_total",
			Help: "Served byte ranges that start past half of the file (seeks).",
		}),
	}
	reg.MustRegister(m.requests, m.bytesSent, m.bytesReceived, m.rangeRequests,
		m.activeStreams, m.rangeStart, m.farRanges)
	return m
}

// observeRanges records the start of each served range.
func (m *metrics) observeRanges(ranges []byteRange, size int64) {
	for _, r := range ranges {
		m.rangeStart.Observe(float64(r.start) / float64(size))
		if 2*r.start > size {
			m.farRanges.Inc()
		}
	}
}
