package live

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// packetItem is one packet queued for a viewer.
type packetItem struct {
	kind int
	p    *rtp.Packet
}

// viewer is one WHEP session.
type viewer struct {
	s      *Server
	st     *stream
	id     string
	log    *slog.Logger
	pc     *webrtc.PeerConnection
	tracks [numKinds]*webrtc.TrackLocalStaticRTP
	q      chan packetItem // packets to write; full means the viewer is too slow

	outBytes [numKinds]prometheus.Counter
	live     atomic.Bool // connected: packets are queued for it
	done     chan struct{}
	endOnce  sync.Once

	gmu     sync.Mutex // guards counted and ended: the viewers gauge counts each viewer once
	counted bool
	ended   bool
}

// goLive starts forwarding to a newly connected viewer and counts it;
// false when it had ended or was live already.
func (v *viewer) goLive() bool {
	v.gmu.Lock()
	defer v.gmu.Unlock()
	if v.ended || v.counted {
		return false
	}
	v.counted = true
	v.live.Store(true)
	v.s.m.viewers.Inc()
	return true
}

func (v *viewer) streamName() string { return v.st.name }

// view adds a WHEP viewer to a live stream.
func (s *Server) view(ctx context.Context, name string, offer []byte) (string, string, error) {
	if _, err := parseOffer(offer); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	st := s.streams[name]
	s.mu.Unlock()
	if st == nil {
		return "", "", ErrNoStream
	}
	o, err := NegotiateView(offer, st.offer)
	if err != nil {
		return "", "", err
	}
	api, err := s.newAPI(o, false)
	if err != nil {
		return "", "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", "", err
	}
	id := newID()
	v := &viewer{s: s, st: st, id: id, pc: pc, q: make(chan packetItem, s.cfg.ViewerQueue), done: make(chan struct{}),
		log: s.log.With("stream", name, "session", id, "role", "viewer")}
	var senders []*webrtc.RTPSender
	for _, c := range []*Codec{o.Video, o.Audio} {
		if c == nil {
			continue
		}
		k := kindIndex(c.Kind)
		tr, err := webrtc.NewTrackLocalStaticRTP(c.capability(false), kindNames[k], "reelfs-"+name)
		if err == nil {
			var snd *webrtc.RTPSender
			if snd, err = pc.AddTrack(tr); err == nil {
				senders = append(senders, snd)
			}
		}
		if err != nil {
			pc.Close()
			return "", "", err
		}
		v.tracks[k] = tr
		v.outBytes[k] = s.m.bytesOut.WithLabelValues(kindNames[k])
	}
	s.mu.Lock()
	err = s.reserve(id, v)
	s.mu.Unlock()
	if err != nil {
		pc.Close()
		return "", "", err
	}
	s.m.sessions.WithLabelValues("viewer").Inc()
	if !st.addViewer(v) {
		v.end("stream-ended")
		return "", "", ErrNoStream
	}
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		v.log.Debug("peer connection", "state", state)
		switch state {
		case webrtc.PeerConnectionStateConnected:
			if v.goLive() {
				st.requestKeyframe("viewer")
			}
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			v.end("peer-" + state.String())
		}
	})
	sdp, err := answer(ctx, pc, offer)
	if err != nil {
		v.end("setup-failed")
		return "", "", err
	}
	if !s.goFunc(v.write) {
		v.end("server-shutdown")
		return "", "", ErrClosed
	}
	for _, snd := range senders {
		s.goFunc(func() { v.readRTCP(snd) })
	}
	v.log.Info("viewing", "codecs", o.String())
	return id, sdp, nil
}

// send queues p for the viewer; a viewer whose queue is full is too slow
// to follow the stream and is dropped, so it cannot hold the others back.
func (v *viewer) send(k int, p *rtp.Packet) {
	if !v.live.Load() || v.tracks[k] == nil {
		return
	}
	select {
	case v.q <- packetItem{k, p}:
	default:
		v.end("slow")
	}
}

// write drains the queue into the viewer's tracks (SRTP and the UDP
// write happen here, on the viewer's own goroutine).
func (v *viewer) write() {
	timer := time.NewTimer(v.s.cfg.ConnectTimeout)
	defer timer.Stop()
	for {
		select {
		case it := <-v.q:
			if err := v.tracks[it.kind].WriteRTP(it.p); err != nil {
				if errors.Is(err, io.ErrClosedPipe) {
					return
				}
				continue
			}
			v.outBytes[it.kind].Add(float64(it.p.MarshalSize()))
		case <-timer.C:
			if !v.live.Load() {
				v.end("connect-timeout")
			}
		case <-v.done:
			return
		}
	}
}

// readRTCP handles one sender's feedback: NACKs from the packet cache,
// keyframe requests to the publisher, loss and estimates into metrics.
// Reading also drives pion's RTCP interceptors.
func (v *viewer) readRTCP(snd *webrtc.RTPSender) {
	k := kindIndex(snd.Track().Kind())
	m := v.s.m
	for {
		pkts, _, err := snd.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.TransportLayerNack:
				found, missing := v.st.caches[k].resend(p)
				m.nacks.Add(float64(len(found) + missing))
				m.nackMisses.Add(float64(missing))
				for _, q := range found {
					select {
					case v.q <- packetItem{k, q}:
						m.retransmits.Inc()
					default:
					}
				}
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				v.st.requestKeyframe("viewer")
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					m.viewerLoss.Observe(float64(r.FractionLost) / 256)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				m.estimatedBitrate.Observe(float64(p.Bitrate))
			}
		}
	}
}

// end disconnects the viewer (see stream.end for why the session is
// released by the closing goroutine).
func (v *viewer) end(reason string) {
	v.endOnce.Do(func() {
		s := v.s
		v.log.Info("viewer left", "reason", reason)
		v.gmu.Lock()
		v.ended = true
		v.live.Store(false)
		if v.counted {
			s.m.viewers.Dec()
		}
		v.gmu.Unlock()
		close(v.done)
		v.st.removeViewer(v)
		switch reason {
		case "slow", "stream-ended", "connect-timeout":
			s.m.viewersDropped.WithLabelValues(reason).Inc()
		}
		if !s.goFunc(func() { v.pc.Close(); s.release(v.id) }) {
			v.pc.Close()
			s.release(v.id)
		}
	})
}
