package live

import "github.com/prometheus/client_golang/prometheus"

// metrics are the server's Prometheus series, on its own registry (served
// at /-/metrics), never the global one.
type metrics struct {
	streams          prometheus.Gauge
	viewers          prometheus.Gauge
	sessions         *prometheus.CounterVec // created, by role
	refused          *prometheus.CounterVec // by reason
	bytesIn          *prometheus.CounterVec // RTP payload+header bytes from publishers, by kind
	bytesOut         *prometheus.CounterVec // to viewers, by kind
	packetsIn        *prometheus.CounterVec
	lostIn           *prometheus.CounterVec // gaps in publishers' sequence numbers
	viewerLoss       prometheus.Histogram   // fraction lost reported by viewers' receiver reports
	nacks            prometheus.Counter     // NACKed packets asked for by viewers
	retransmits      prometheus.Counter     // packets resent from the cache
	nackMisses       prometheus.Counter     // NACKed packets no longer cached
	keyframeReqs     *prometheus.CounterVec // PLIs sent to publishers, by reason
	viewersDropped   *prometheus.CounterVec // by reason
	recordLag        prometheus.Histogram   // seconds from a fragment's last packet to its commit
	recordBytes      prometheus.Counter
	recordFragments  prometheus.Counter
	recordErrors     prometheus.Counter
	recordDropped    prometheus.Counter // packets the recorder could not keep up with
	estimatedBitrate prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "reelfs_live_streams", Help: "Streams with a publisher now."}),
		viewers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "reelfs_live_viewers", Help: "WHEP viewers connected now."}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_sessions_total",
			Help: "Sessions created, by role (publisher, viewer)."}, []string{"role"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_refused_total",
			Help: "WHIP/WHEP requests refused, by reason."}, []string{"reason"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_received_bytes_total",
			Help: "RTP bytes received from publishers, by kind; rate() is the bitrate in."}, []string{"kind"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_sent_bytes_total",
			Help: "RTP bytes sent to viewers, by kind; rate() is the bitrate out."}, []string{"kind"}),
		packetsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_received_packets_total",
			Help: "RTP packets received from publishers, by kind."}, []string{"kind"}),
		lostIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_lost_packets_total",
			Help: "Packets missing from publishers' sequence numbers, by kind."}, []string{"kind"}),
		viewerLoss: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "reelfs_live_viewer_loss_ratio",
			Help:    "Fraction lost that viewers report in RTCP receiver reports.",
			Buckets: []float64{0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}),
		nacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_nacked_packets_total",
			Help: "Packets viewers asked to be resent (NACK)."}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_retransmitted_packets_total",
			Help: "Packets resent to viewers from the packet cache."}),
		nackMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_nack_misses_total",
			Help: "NACKed packets that had left the packet cache."}),
		keyframeReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_keyframe_requests_total",
			Help: "Keyframe requests (PLI) sent to publishers, by reason (viewer, record)."}, []string{"reason"}),
		viewersDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reelfs_live_viewers_dropped_total",
			Help: "Viewers disconnected by the server, by reason (slow, failed, stream-ended)."}, []string{"reason"}),
		recordLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "reelfs_live_record_lag_seconds",
			Help:    "Time from a fragment's last packet to its commit in the filesystem.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}}),
		recordBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_recorded_bytes_total",
			Help: "Bytes of fMP4 committed to recordings."}),
		recordFragments: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_recorded_fragments_total",
			Help: "Fragments committed to recordings."}),
		recordErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_record_errors_total",
			Help: "Recordings stopped by a filesystem error."}),
		recordDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "reelfs_live_record_dropped_packets_total",
			Help: "Packets the recorder fell too far behind to take."}),
		estimatedBitrate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "reelfs_live_viewer_estimate_bps",
			Help:    "Receiver bandwidth estimates (REMB) from viewers.",
			Buckets: prometheus.ExponentialBuckets(125e3, 2, 8)}),
	}
	reg.MustRegister(m.streams, m.viewers, m.sessions, m.refused, m.bytesIn, m.bytesOut, m.packetsIn, m.lostIn,
		m.viewerLoss, m.nacks, m.retransmits, m.nackMisses, m.keyframeReqs, m.viewersDropped, m.recordLag,
		m.recordBytes, m.recordFragments, m.recordErrors, m.recordDropped, m.estimatedBitrate)
	return m
}
