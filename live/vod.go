package live

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// This file plays a stored MP4 or fragmented MP4 (a recording, or any file
// whose codecs WebRTC carries) to a WHEP viewer in real time:
// POST /whep/vod/{path}?t=SECONDS.

// vodSample is one sample of a stored track: where its bytes are.
type vodSample struct {
	dts  uint64
	dur  uint32
	off  int64
	size uint32
	key  bool
}

// vodTrack is one playable track of a file.
type vodTrack struct {
	codec     Codec
	timescale uint32
	params    [][]byte // H.264 SPS and PPS, sent before each keyframe
	samples   []vodSample
}

func (t *vodTrack) seconds(s vodSample) time.Duration {
	return time.Duration(float64(s.dts) / float64(t.timescale) * float64(time.Second))
}

// indexMP4 lists the samples of the first H.264 or VP8 track and the first
// Opus track of a file decoded with mp4.DecModeLazyMdat (sample bytes stay
// in the file; only their offsets are kept). Progressive files are read
// from their sample tables, fragmented ones from every moof.
func indexMP4(f *mp4.File) ([numKinds]*vodTrack, error) {
	var out [numKinds]*vodTrack
	moov := f.Moov
	if moov == nil && f.Init != nil {
		moov = f.Init.Moov
	}
	if moov == nil {
		return out, fmt.Errorf("%w: no moov box", ErrBadMedia)
	}
	for _, trak := range moov.Traks {
		stbl := trak.Mdia.Minf.Stbl
		if stbl == nil || stbl.Stsd == nil {
			continue
		}
		sd := stbl.Stsd
		t := &vodTrack{timescale: trak.Mdia.Mdhd.Timescale}
		k := kindVideo
		switch {
		case sd.AvcX != nil && sd.AvcX.AvcC != nil && len(sd.AvcX.AvcC.SPSnalus) > 0:
			sps := sd.AvcX.AvcC.SPSnalus[0]
			if len(sps) < 4 {
				continue
			}
			t.codec = Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				Fmtp: fmt.Sprintf("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%02x%02x%02x", sps[1], sps[2], sps[3])}
			t.params = append(append(t.params, sd.AvcX.AvcC.SPSnalus...), sd.AvcX.AvcC.PPSnalus...)
		case sd.VpXX != nil && sd.VpXX.Type() == "vp08":
			t.codec = Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		case sd.Opus != nil:
			k = kindAudio
			t.codec = Codec{Kind: webrtc.RTPCodecTypeAudio, MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
		default:
			continue
		}
		if out[k] != nil || t.timescale == 0 {
			continue
		}
		var err error
		if f.IsFragmented() {
			t.samples, err = fragmentedSamples(f, moov, trak.Tkhd.TrackID)
		} else {
			t.samples, err = progressiveSamples(stbl)
		}
		if err != nil {
			return out, err
		}
		if len(t.samples) > 0 {
			out[k] = t
		}
	}
	if out[kindVideo] == nil && out[kindAudio] == nil {
		return out, fmt.Errorf("%w: no H.264, VP8 or Opus track", ErrNoCodec)
	}
	return out, nil
}

func fragmentedSamples(f *mp4.File, moov *mp4.MoovBox, id uint32) ([]vodSample, error) {
	var trex *mp4.TrexBox
	if moov.Mvex != nil {
		for _, x := range moov.Mvex.Trexs {
			if x.TrackID == id {
				trex = x
			}
		}
	}
	var out []vodSample
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID != id {
					continue
				}
				var dts uint64
				if traf.Tfdt != nil {
					dts = traf.Tfdt.BaseMediaDecodeTime()
				}
				for _, trun := range traf.Truns {
					trun.AddSampleDefaultValues(traf.Tfhd, trex)
					base := frag.Moof.StartPos
					if traf.Tfhd.HasBaseDataOffset() {
						base = traf.Tfhd.BaseDataOffset
					}
					if trun.HasDataOffset() {
						base = uint64(int64(base) + int64(trun.DataOffset))
					}
					off := int64(base)
					for _, s := range trun.Samples {
						out = append(out, vodSample{dts: dts, dur: s.Dur, off: off, size: s.Size, key: s.IsSync()})
						dts += uint64(s.Dur)
						off += int64(s.Size)
					}
				}
			}
		}
	}
	return out, nil
}

func progressiveSamples(stbl *mp4.StblBox) ([]vodSample, error) {
	if stbl.Stsz == nil || stbl.Stts == nil || stbl.Stsc == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
		return nil, fmt.Errorf("%w: incomplete sample tables", ErrBadMedia)
	}
	n := int(stbl.Stsz.GetNrSamples())
	out := make([]vodSample, 0, n)
	prevChunk, off := -1, int64(0)
	for i := 1; i <= n; i++ {
		dts, dur := stbl.Stts.GetDecodeTime(uint32(i))
		chunk, _, err := stbl.Stsc.ChunkNrFromSampleNr(i)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMedia, err)
		}
		if chunk != prevChunk {
			var o uint64
			if stbl.Stco != nil {
				o, err = stbl.Stco.GetOffset(chunk)
			} else {
				o, err = stbl.Co64.GetOffset(chunk)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadMedia, err)
			}
			prevChunk, off = chunk, int64(o)
		}
		size := stbl.Stsz.GetSampleSize(i)
		key := stbl.Stss == nil || stbl.Stss.IsSyncSample(uint32(i))
		out = append(out, vodSample{dts: dts, dur: dur, off: off, size: size, key: key})
		off += int64(size)
	}
	return out, nil
}

// startIndexes returns, per track, the first sample to play from offset
// at: video from the last keyframe at or before it, audio from that
// keyframe's time; and the time playback starts at.
func startIndexes(tracks [numKinds]*vodTrack, at time.Duration) ([numKinds]int, time.Duration) {
	var idx [numKinds]int
	start := at
	if v := tracks[kindVideo]; v != nil {
		start = 0
		for i, s := range v.samples {
			if v.seconds(s) > at {
				break
			}
			if s.key {
				idx[kindVideo], start = i, v.seconds(s)
			}
		}
	}
	if a := tracks[kindAudio]; a != nil {
		idx[kindAudio] = len(a.samples)
		for i, s := range a.samples {
			if a.seconds(s) >= start {
				idx[kindAudio] = i
				break
			}
		}
	}
	return idx, start
}

// annexB turns an AVC sample (4-byte lengths) into Annex B, with the
// parameter sets first when it is a keyframe.
func annexB(avc []byte, params [][]byte, key bool) []byte {
	out := make([]byte, 0, len(avc)+64)
	if key {
		for _, p := range params {
			out = append(append(out, 0, 0, 0, 1), p...)
		}
	}
	for len(avc) >= 4 {
		n := int(binary.BigEndian.Uint32(avc))
		avc = avc[4:]
		if n > len(avc) {
			break
		}
		out = append(append(out, 0, 0, 0, 1), avc[:n]...)
		avc = avc[n:]
	}
	return out
}

// vodSession is one WHEP playback of a file.
type vodSession struct {
	s       *Server
	id      string
	log     *slog.Logger
	pc      *webrtc.PeerConnection
	file    ReadFile
	tracks  [numKinds]*vodTrack
	out     [numKinds]*webrtc.TrackLocalStaticSample
	at      time.Duration
	up      chan struct{} // closed when the connection is up
	upOnce  sync.Once
	done    chan struct{}
	endOnce sync.Once
}

func (v *vodSession) streamName() string { return "vod" }

func (s *Server) handleVOD(w http.ResponseWriter, r *http.Request) {
	offer, ok := s.admit(w, r, false)
	if !ok {
		return
	}
	if s.fs == nil {
		s.fail(w, http.StatusNotFound, "no-stream", "live: no filesystem to play from")
		return
	}
	var at time.Duration
	if t := r.URL.Query().Get("t"); t != "" {
		sec, err := strconv.ParseFloat(t, 64)
		if err != nil || sec < 0 || sec > 1e7 {
			s.fail(w, http.StatusBadRequest, "bad-offset", "live: t must be a number of seconds")
			return
		}
		at = time.Duration(sec * float64(time.Second))
	}
	id, sdp, err := s.playVOD(r.Context(), path.Clean("/"+r.PathValue("path")), offer, at)
	if err != nil {
		s.failErr(w, err)
		return
	}
	created(w, "/whep/vod/"+id, sdp)
}

func (s *Server) playVOD(ctx context.Context, p string, offer []byte, at time.Duration) (string, string, error) {
	if _, err := parseOffer(offer); err != nil {
		return "", "", err
	}
	f, err := s.fs.Open(ctx, p)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", ErrNoStream, p, err)
	}
	closeFile := true
	defer func() {
		if closeFile {
			f.Close()
		}
	}()
	mf, err := mp4.DecodeFile(f, mp4.WithDecodeMode(mp4.DecModeLazyMdat))
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", ErrBadMedia, p, err)
	}
	tracks, err := indexMP4(mf)
	if err != nil {
		return "", "", err
	}
	var file Offer
	if tracks[kindVideo] != nil {
		file.Video = &tracks[kindVideo].codec
	}
	if tracks[kindAudio] != nil {
		file.Audio = &tracks[kindAudio].codec
	}
	o, err := NegotiateView(offer, file)
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
	v := &vodSession{s: s, id: id, pc: pc, file: f, at: at, up: make(chan struct{}), done: make(chan struct{}),
		log: s.log.With("vod", p, "session", id, "role", "vod")}
	var senders []*webrtc.RTPSender
	for _, c := range []*Codec{o.Video, o.Audio} {
		if c == nil {
			continue
		}
		k := kindIndex(c.Kind)
		tr, err := webrtc.NewTrackLocalStaticSample(c.capability(false), kindNames[k], "reelfs-vod")
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
		v.out[k], v.tracks[k] = tr, tracks[k]
	}
	s.mu.Lock()
	err = s.reserve(id, v)
	s.mu.Unlock()
	if err != nil {
		pc.Close()
		return "", "", err
	}
	closeFile = false // the session owns it now
	s.m.sessions.WithLabelValues("vod").Inc()
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			v.upOnce.Do(func() { close(v.up) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			v.end("peer-" + state.String())
		}
	})
	sdp, err := answer(ctx, pc, offer)
	if err != nil {
		v.end("setup-failed")
		return "", "", err
	}
	if !s.goFunc(v.play) {
		v.end("server-shutdown")
		return "", "", ErrClosed
	}
	for _, snd := range senders {
		s.goFunc(func() {
			for {
				if _, _, err := snd.ReadRTCP(); err != nil {
					return
				}
			}
		})
	}
	v.log.Info("playing", "codecs", o.String(), "from", at)
	return id, sdp, nil
}

// play sends the samples in real time from the start offset, then ends
// the session (the viewer sees the connection close).
func (v *vodSession) play() {
	select {
	case <-v.up:
	case <-v.done:
		return
	case <-time.After(v.s.cfg.ConnectTimeout):
		v.end("connect-timeout")
		return
	}
	idx, start := startIndexes(v.tracks, v.at)
	wall := time.Now()
	buf := make([]byte, 0, 1<<16)
	for {
		k := -1
		var next time.Duration
		for i, t := range v.tracks {
			if t == nil || v.out[i] == nil || idx[i] >= len(t.samples) {
				continue
			}
			if at := t.seconds(t.samples[idx[i]]); k < 0 || at < next {
				k, next = i, at
			}
		}
		if k < 0 {
			v.end("finished")
			return
		}
		select {
		case <-v.done:
			return
		case <-time.After(time.Until(wall.Add(next - start))):
		}
		t := v.tracks[k]
		smp := t.samples[idx[k]]
		idx[k]++
		if cap(buf) < int(smp.size) {
			buf = make([]byte, smp.size)
		}
		data := buf[:smp.size]
		if _, err := v.file.ReadAt(data, smp.off); err != nil && !errors.Is(err, io.EOF) {
			v.log.Warn("read sample", "err", err)
			v.end("read-error")
			return
		}
		if t.codec.MimeType == webrtc.MimeTypeH264 {
			data = annexB(data, t.params, smp.key)
		}
		dur := time.Duration(float64(smp.dur) / float64(t.timescale) * float64(time.Second))
		if err := v.out[k].WriteSample(media.Sample{Data: data, Duration: dur}); err != nil {
			v.end("write-error")
			return
		}
	}
}

func (v *vodSession) end(reason string) {
	v.endOnce.Do(func() {
		s := v.s
		v.log.Info("playback ended", "reason", reason)
		close(v.done)
		if !s.goFunc(func() { v.pc.Close(); v.file.Close(); s.release(v.id) }) {
			v.pc.Close()
			v.file.Close()
			s.release(v.id)
		}
	})
}
