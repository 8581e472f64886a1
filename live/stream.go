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

	pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		k := kindIndex(t.Kind())
		if k == kindVideo {
			st.kmu.Lock()
			st.videoSSRC = uint32(t.SSRC())
			st.kmu.Unlock()
			st.requestKeyframe("start")
		}
		st.log.Info("track", "kind", kindNames[k], "codec", t.Codec().MimeType, "ssrc", t.SSRC())
		s.goFunc(func() { st.read(k, t) })
		// The publisher's sender reports reach pion's receiver-report
		// interceptor only when something reads them.
		s.goFunc(func() {
			for {
				if _, _, err := recv.ReadRTCP(); err != nil {
					return
				}
			}
		})
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
