package metaserver

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// The leader's op-log endpoints (wire.PathOpLog*). Each checks the epoch
// the follower follows: an answer under another epoch is refused on both
// sides, so a deposed leader ships nothing a follower applies.

// checkEpoch refuses a request that follows another epoch. A follower
// that names a newer epoch tells this node it was deposed.
func (h *ha) checkEpoch(rc *fasthttp.RequestCtx) error {
	leading, _ := h.isLeader()
	if !leading {
		return h.notLeader()
	}
	want, err := strconv.ParseUint(string(rc.QueryArgs().Peek("epoch")), 10, 64)
	if err != nil {
		return errInval("epoch %q", rc.QueryArgs().Peek("epoch"))
	}
	h.mu.Lock()
	epoch := h.epoch
	h.mu.Unlock()
	if want != epoch {
		if want > epoch {
			h.log.Warn("a follower follows a newer epoch: this leader was deposed", "mine", epoch, "theirs", want)
			h.stepDown()
		}
		return wire.Errorf(wire.ErrStaleEpoch, "leader at epoch %d, request for epoch %d", epoch, want)
	}
	rc.Response.Header.Set(headerEpoch, strconv.FormatUint(epoch, 10))
	return nil
}

// serveEpochs answers a follower's check of its log.
func (h *ha) serveEpochs(rc *fasthttp.RequestCtx) {
	if err := h.checkEpoch(rc); err != nil {
		wire.ReplyError(rc, err)
		return
	}
	hist, err := epochHistory(h.c.db)
	if err != nil {
		wire.ReplyError(rc, ioError("epoch history", err))
		return
	}
	h.mu.Lock()
	epoch := h.epoch
	h.mu.Unlock()
	wire.ReplyJSON(rc, epochsReply{Epoch: epoch, First: h.c.firstSeq.Load(), Last: h.c.lastSeq(), History: hist})
}

// serveFetch is the long-poll fetch: it records the follower's ack (the
// from it asks for), waits up to wait for an entry at from, and answers
// the entries from there on.
func (h *ha) serveFetch(rc *fasthttp.RequestCtx) {
	if err := h.checkEpoch(rc); err != nil {
		wire.ReplyError(rc, err)
		return
	}
	args := rc.QueryArgs()
	from, err := strconv.ParseUint(string(args.Peek("from")), 10, 64)
	member, addr := string(args.Peek("member")), string(args.Peek("addr"))
	wait, werr := time.ParseDuration(string(args.Peek("wait")))
	switch {
	case err != nil || from == 0:
		wire.ReplyError(rc, errInval("from %q", args.Peek("from")))
		return
	case !h.validMember(member):
		wire.ReplyError(rc, errInval("member %q", member))
		return
	case werr != nil || wait < 0 || wait > time.Minute:
		wire.ReplyError(rc, errInval("wait %q", args.Peek("wait")))
		return
	}
	h.observe(member, addr, from)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	if h.c.lastSeq() < from {
		h.polling(member, true)
		defer h.polling(member, false)
	}
	for h.c.lastSeq() < from {
		ch := h.c.appended.wait()
		if h.c.lastSeq() >= from {
			break
		}
		select {
		case <-ch:
			continue
		case <-deadline.C:
		case <-rc.Done():
		}
		break
	}
	if leading, _ := h.isLeader(); !leading {
		wire.ReplyError(rc, h.notLeader())
		return
	}
	rs, ok, err := h.c.readLog(from, fetchMaxBytes, fetchMaxItems)
	switch {
	case err != nil:
		wire.ReplyError(rc, ioError("read op log", err))
		return
	case !ok:
		wire.ReplyError(rc, wire.Errorf(wire.ErrRange, "op-log entry %d was trimmed; resync from a snapshot", from))
		return
	}
	rc.SetContentType("application/octet-stream")
	rc.SetBody(encodeRecords(rs))
}

// validMember reports whether a follower's node id, as it names itself
// in a fetch or a leave, can be another member's.
func (h *ha) validMember(member string) bool {
	return member != "" && member != h.self && len(member) <= 64
}

// serveLeave takes a follower's word that it is shutting down.
func (h *ha) serveLeave(rc *fasthttp.RequestCtx) {
	if err := h.checkEpoch(rc); err != nil {
		wire.ReplyError(rc, err)
		return
	}
	member := string(rc.QueryArgs().Peek("member"))
	if !h.validMember(member) {
		wire.ReplyError(rc, errInval("member %q", member))
		return
	}
	h.leave(member)
	rc.SetStatusCode(fasthttp.StatusNoContent)
}

// serveSnapshot streams the database for a resyncing member.
func (h *ha) serveSnapshot(rc *fasthttp.RequestCtx) {
	if err := h.checkEpoch(rc); err != nil {
		wire.ReplyError(rc, err)
		return
	}
	h.mu.Lock()
	epoch := h.epoch
	h.mu.Unlock()
	data, seq, err := h.c.snapshot(epoch)
	if err != nil {
		wire.ReplyError(rc, err)
		return
	}
	h.log.Info("serving a snapshot", "seq", seq, "bytes", len(data), "to", rc.RemoteAddr().String())
	rc.SetContentType("application/octet-stream")
	rc.SetBody(data)
}

// haMetrics are failover's Prometheus metrics.
type haMetrics struct {
	failover prometheus.Histogram
	isr      prometheus.Gauge
}

func newHAMetrics(reg *prometheus.Registry, h *ha) *haMetrics {
	m := &haMetrics{
		failover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "takeover_seconds",
			Help:    "Time from holding the leader lock to serving (epoch written, state reloaded).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		isr: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "reelfs", Subsystem: "meta", Name: "isr_size",
			Help: "Metaservers in the in-sync set, as the leader last wrote it.",
		}),
	}
	reg.MustRegister(m.failover, m.isr,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "reelfs", Subsystem: "meta", Name: "leader",
			Help: "1 while this metaserver leads."}, func() float64 {
			if ok, _ := h.isLeader(); ok {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "reelfs", Subsystem: "meta", Name: "epoch",
			Help: "The epoch this metaserver leads or follows."}, func() float64 {
			h.mu.Lock()
			defer h.mu.Unlock()
			return float64(h.epoch)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "reelfs", Subsystem: "meta", Name: "committed_seq",
			Help: "Last op-log seq every in-sync metaserver holds (on the leader)."}, func() float64 {
			return float64(h.committed())
		}),
	)
	return m
}
