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

// Track kinds index per-kind arrays.
const (
	kindVideo = iota
	kindAudio
	numKinds
)

var kindNames = [numKinds]string{"video", "audio"}

func kindIndex(k webrtc.RTPCodecType) int {
	if k == webrtc.RTPCodecTypeAudio {
		return kindAudio
	}
	return kindVideo
}

// stream is one WHIP publisher and its viewers. See doc.go for its states.
type stream struct {
	s       *Server
	name    string
	id      string
	log     *slog.Logger
	offer   Offer
	pc      *webrtc.PeerConnection
	started time.Time
	rec     *recorder // nil: not recording
	caches  [numKinds]*packetCache

	inBytes, inPackets, inLost [numKinds]prometheus.Counter

	connected atomic.Bool
	done      chan struct{} // closed when the stream ends
	endOnce   sync.Once

	vmu     sync.Mutex // guards ended and writes of viewers (readers load the pointer)
	ended   bool
	viewers atomic.Pointer[[]*viewer]

	kmu       sync.Mutex // guards gate and videoSSRC
	gate      keyframeGate
	videoSSRC uint32
}

func (st *stream) streamName() string { return st.name }

var (
	_ session = (*stream)(nil)
	_ session = (*viewer)(nil)
	_ session = (*vodSession)(nil)
)

// publish starts a stream from a WHIP offer and returns the session id
// and the answer.
func (s *Server) publish(ctx context.Context, name string, offer []byte) (string, string, error) {
	o, err := NegotiatePublish(offer)
	if err != nil {
		return "", "", err
	}
	s.mu.Lock()
	busy, closed := s.streams[name] != nil, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return "", "", ErrClosed
	case busy:
		return "", "", ErrStreamBusy
	}
	api, err := s.newAPI(o, true)
	if err != nil {
		return "", "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", "", err
	}
	id := newID()
	st := &stream{
		s: s, name: name, id: id, offer: o, pc: pc, started: time.Now(), done: make(chan struct{}),
		log:  s.log.With("stream", name, "session", id, "role", "publisher"),
		gate: keyframeGate{interval: s.cfg.KeyframeInterval},
	}
	st.viewers.Store(&[]*viewer{})
	for k := range numKinds {
		st.caches[k] = newPacketCache(s.cfg.PacketCache)
		st.inBytes[k] = s.m.bytesIn.WithLabelValues(kindNames[k])
		st.inPackets[k] = s.m.packetsIn.WithLabelValues(kindNames[k])
		st.inLost[k] = s.m.lostIn.WithLabelValues(kindNames[k])
	}
	s.mu.Lock()
	if s.streams[name] != nil {
		err = ErrStreamBusy
	} else if err = s.reserve(id, st); err == nil {
		s.streams[name] = st
	}
	s.mu.Unlock()
	if err != nil {
		pc.Close()
		return "", "", err
	}
	s.m.sessions.WithLabelValues("publisher").Inc()
	s.m.streams.Inc()
	if s.fs != nil {
		st.rec = newRecorder(s, st)
	}

	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		k := kindIndex(t.Kind())
		if k == kindVideo {
			st.kmu.Lock()
			st.videoSSRC = uint32(t.SSRC())
			st.kmu.Unlock()
			st.requestKeyframe("start")
		}
		st.log.Info("track", "kind", kindNames[k], "codec", t.Codec().MimeType, "ssrc", t.SSRC())
		s.goFunc(func() { st.read(k, t) })
	})
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		st.log.Debug("peer connection", "state", state)
		switch state {
		case webrtc.PeerConnectionStateConnected:
			st.connected.Store(true)
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			st.end("peer-" + state.String())
		}
	})
	sdp, err := answer(ctx, pc, offer)
	if err != nil {
		st.end("setup-failed")
		return "", "", err
	}
	if !s.goFunc(st.tick) {
		st.end("server-shutdown")
		return "", "", ErrClosed
	}
	if st.rec != nil && !s.goFunc(st.rec.run) {
		st.end("server-shutdown")
		return "", "", ErrClosed
	}
	st.log.Info("publishing", "codecs", o.String())
	return id, sdp, nil
}

// end ends the stream: its viewers are disconnected, its recording is
// finished, its name is free again. It returns at once; the peer
// connection is closed by a goroutine Run waits for.
func (st *stream) end(reason string) {
	st.endOnce.Do(func() {
		s := st.s
		st.log.Info("stream ended", "reason", reason, "duration", time.Since(st.started).Round(time.Millisecond))
		close(st.done)
		s.mu.Lock()
		if s.streams[st.name] == st {
			delete(s.streams, st.name)
		}
		s.mu.Unlock()
		s.m.streams.Dec()
		st.vmu.Lock()
		st.ended = true
		vs := *st.viewers.Load()
		st.viewers.Store(&[]*viewer{})
		st.vmu.Unlock()
		for _, v := range vs {
			v.end("stream-ended")
		}
		// The session stays registered until the connection is closed, so
		// Run (which waits for sessions) cannot miss this goroutine.
		if !s.goFunc(func() { st.pc.Close(); s.release(st.id) }) {
			st.pc.Close()
			s.release(st.id)
		}
	})
}

// read forwards one published track: into the packet cache, to every
// connected viewer's queue and to the recorder. It returns when the peer
// connection closes.
func (st *stream) read(k int, t *webrtc.TrackRemote) {
	var loss lossCounter
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				st.log.Debug("track read ended", "kind", kindNames[k], "err", err)
			}
			return
		}
		// Header extensions carry the publisher's extmap ids, which mean
		// nothing to viewers: forward without them.
		p.Header.Extension, p.Header.Extensions, p.Header.ExtensionProfile = false, nil, 0
		st.inPackets[k].Inc()
		st.inBytes[k].Add(float64(p.MarshalSize()))
		if n := loss.observe(p.SequenceNumber); n > 0 {
			st.inLost[k].Add(float64(n))
		}
		st.caches[k].put(p)
		for _, v := range *st.viewers.Load() {
			v.send(k, p)
		}
		if st.rec != nil {
			st.rec.push(k, p, time.Now())
		}
	}
}

// tick sends coalesced keyframe requests and ends a stream whose
// publisher never connected.
func (st *stream) tick() {
	t := time.NewTicker(st.s.cfg.KeyframeInterval / 4)
	defer t.Stop()
	for {
		select {
		case <-st.done:
			return
		case now := <-t.C:
			st.kmu.Lock()
			send := st.videoSSRC != 0 && st.gate.due(now)
			ssrc := st.videoSSRC
			st.kmu.Unlock()
			if send {
				st.sendPLI(ssrc)
			}
			if !st.connected.Load() && now.Sub(st.started) > st.s.cfg.ConnectTimeout {
				st.end("connect-timeout")
			}
		}
	}
}

// requestKeyframe asks the publisher for a keyframe, rate-limited.
func (st *stream) requestKeyframe(reason string) {
	if st.offer.Video == nil {
		return
	}
	st.kmu.Lock()
	ssrc := st.videoSSRC
	send := false
	if ssrc == 0 {
		st.gate.pending = true // sent once the track is known
	} else {
		send = st.gate.request(time.Now())
	}
	st.kmu.Unlock()
	st.s.m.keyframeReqs.WithLabelValues(reason).Inc()
	if send {
		st.sendPLI(ssrc)
	}
}

func (st *stream) sendPLI(ssrc uint32) {
	if err := st.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		st.log.Debug("PLI", "err", err)
	}
}

// addViewer adds v unless the stream has ended.
func (st *stream) addViewer(v *viewer) bool {
	st.vmu.Lock()
	defer st.vmu.Unlock()
	if st.ended {
		return false
	}
	old := *st.viewers.Load()
	vs := make([]*viewer, len(old), len(old)+1)
	copy(vs, old)
	vs = append(vs, v)
	st.viewers.Store(&vs)
	return true
}

func (st *stream) removeViewer(v *viewer) {
	st.vmu.Lock()
	defer st.vmu.Unlock()
	old := *st.viewers.Load()
	vs := make([]*viewer, 0, len(old))
	for _, x := range old {
		if x != v {
			vs = append(vs, x)
		}
	}
	st.viewers.Store(&vs)
}

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
