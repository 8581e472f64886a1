package live

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/Eyevinn/mp4ff/vp8"
	"github.com/pion/webrtc/v4"
)

// This file is the pure core of recording: RTP timestamps to track time,
// samples to fragments, fragments to fMP4 bytes and HLS playlist lines.
// recorder.go feeds it packets and writes what it returns.

// sample is one recorded frame in its track's timescale (the RTP clock).
type sample struct {
	dts  uint64
	dur  uint32
	key  bool
	data []byte
}

// trackClock maps one track's 32-bit RTP timestamps to a 64-bit decode
// time that starts at base (the track's first sample's offset from the
// start of the recording, so audio and video line up by arrival).
type trackClock struct {
	started bool
	last    uint32
	now     uint64
}

// at returns the decode time of RTP timestamp ts; base is used for the
// first call only. A timestamp before the previous one (reordering
// across a sample boundary cannot happen after the sample builder) is
// clamped so decode times never go back.
func (c *trackClock) at(ts uint32, base uint64) uint64 {
	if !c.started {
		c.started, c.last, c.now = true, ts, base
		return c.now
	}
	d := int32(ts - c.last)
	if d > 0 {
		c.now += uint64(d)
		c.last = ts
	}
	return c.now
}

// fragment is one moof+mdat: the samples of each track, and where it
// starts on the recording's timeline.
type fragment struct {
	seq     uint32
	tracks  [numKinds][]sample
	start   time.Duration // decode time of the first sample of the timing track
	dur     time.Duration
	key     bool // starts with a video keyframe
	packets time.Time
}

// fragmenter cuts samples into fragments of about target: a fragment is
// cut before the first video keyframe once target is reached, or before
// any video sample once max is reached (a stream with rare keyframes
// still commits at least every max). Audio samples go to the fragment
// their decode time falls in. Audio-only streams are cut at target.
type fragmenter struct {
	target, max time.Duration
	clock       [numKinds]uint32 // timescale per track; 0: no such track
	cur         [numKinds][]sample
	seq         uint32
}

func (f *fragmenter) seconds(k int, t uint64) time.Duration {
	return time.Duration(float64(t) / float64(f.clock[k]) * float64(time.Second))
}

// timing is the track whose samples decide cuts: video when there is one.
func (f *fragmenter) timing() int {
	if f.clock[kindVideo] != 0 {
		return kindVideo
	}
	return kindAudio
}

func (f *fragmenter) span(k int) time.Duration {
	c := f.cur[k]
	if len(c) == 0 {
		return 0
	}
	last := c[len(c)-1]
	return f.seconds(k, last.dts+uint64(last.dur)-c[0].dts)
}

// add appends a sample whose duration is known and returns the fragment
// it completed, if adding it cut one.
func (f *fragmenter) add(k int, s sample) *fragment {
	var out *fragment
	if k == f.timing() && len(f.cur[k]) > 0 {
		span := f.span(k)
		if span >= f.max || (span >= f.target && (s.key || k == kindAudio)) {
			at := f.seconds(k, s.dts)
			out = f.cut(at, at)
		}
	}
	f.cur[k] = append(f.cur[k], s)
	return out
}

// cut returns the timing track's samples and the other tracks' samples
// before time 'at' as a fragment that ends at end.
func (f *fragmenter) cut(at, end time.Duration) *fragment {
	t := f.timing()
	f.seq++
	fr := &fragment{seq: f.seq}
	fr.tracks[t], f.cur[t] = f.cur[t], nil
	for k := range numKinds {
		if k == t {
			continue
		}
		n := 0
		for n < len(f.cur[k]) && f.seconds(k, f.cur[k][n].dts) < at {
			n++
		}
		fr.tracks[k] = append([]sample(nil), f.cur[k][:n]...)
		f.cur[k] = append(f.cur[k][:0:0], f.cur[k][n:]...)
	}
	first := fr.tracks[t][0]
	fr.start = f.seconds(t, first.dts)
	fr.dur = end - fr.start
	fr.key = t == kindVideo && first.key
	return fr
}

// flush returns what is left as a last fragment (nil when nothing is).
func (f *fragmenter) flush() *fragment {
	t := f.timing()
	if len(f.cur[t]) == 0 {
		return nil
	}
	end := f.seconds(t, f.cur[t][0].dts) + f.span(t)
	return f.cut(time.Duration(math.MaxInt64), end)
}

// h264Params returns the SPS and PPS NAL units of an AVC (length
// prefixed) sample and whether it holds an IDR slice.
func h264Params(avc []byte) (sps, pps [][]byte, idr bool) {
	for len(avc) >= 4 {
		n := int(binary.BigEndian.Uint32(avc))
		avc = avc[4:]
		if n > len(avc) || n == 0 {
			break
		}
		nalu := avc[:n]
		avc = avc[n:]
		switch nalu[0] & 0x1f {
		case 5:
			idr = true
		case 7:
			sps = append(sps, nalu)
		case 8:
			pps = append(pps, nalu)
		}
	}
	return sps, pps, idr
}

// isKeyframe reports whether a depacketized sample of codec mime is a
// random access point.
func isKeyframe(mime string, data []byte) bool {
	switch mime {
	case webrtc.MimeTypeH264:
		_, _, idr := h264Params(data)
		return idr
	case webrtc.MimeTypeVP8:
		return len(data) > 0 && data[0]&1 == 0
	}
	return true
}

// trackIDs numbers the tracks of a recording: video 1 when present, then audio.
func trackIDs(clock [numKinds]uint32) [numKinds]uint32 {
	var ids [numKinds]uint32
	n := uint32(0)
	for k := range numKinds {
		if clock[k] != 0 {
			n++
			ids[k] = n
		}
	}
	return ids
}

// initSegment encodes ftyp+moov for a recording of the offer's codecs;
// key is the first video keyframe (its parameter sets and picture size
// describe the track).
func initSegment(o Offer, key []byte) ([]byte, error) {
	init := mp4.CreateEmptyInit()
	init.Moov.Mvhd.Timescale = 1000
	if o.Video != nil {
		trak := init.AddEmptyTrack(o.Video.ClockRate, "video", "und")
		switch o.Video.MimeType {
		case webrtc.MimeTypeH264:
			sps, pps, _ := h264Params(key)
			if len(sps) == 0 || len(pps) == 0 {
				return nil, errors.New("live: H.264 keyframe without SPS/PPS")
			}
			if err := trak.SetAVCDescriptor("avc1", sps, pps, true); err != nil {
				return nil, err
			}
		case webrtc.MimeTypeVP8:
			h, err := vp8.ParseFrameHeader(key)
			if err != nil {
				return nil, err
			}
			vpcc := &mp4.VppCBox{Version: 1, Profile: 0, Level: 10, BitDepth: 8, ChromaSubsampling: 1,
				ColourPrimaries: 1, TransferCharacteristics: 1, MatrixCoefficients: 1}
			if err := trak.SetVPxDescriptor("vp08", vpcc, h.Width, h.Height); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("live: cannot record %s", o.Video.MimeType)
		}
	}
	if o.Audio != nil {
		trak := init.AddEmptyTrack(48000, "audio", "und")
		dops := &mp4.DopsBox{OutputChannelCount: 2, PreSkip: 312, InputSampleRate: 48000}
		trak.Mdia.Minf.Stbl.Stsd.AddChild(mp4.CreateAudioSampleEntryBox("Opus", 2, 16, 48000, dops))
	}
	var b bytes.Buffer
	if err := init.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeFragment encodes one fragment as moof+mdat.
func encodeFragment(fr *fragment, ids [numKinds]uint32) ([]byte, error) {
	var tids []uint32
	for k := range numKinds {
		if ids[k] != 0 && len(fr.tracks[k]) > 0 {
			tids = append(tids, ids[k])
		}
	}
	f, err := mp4.CreateMultiTrackFragment(fr.seq, tids)
	if err != nil {
		return nil, err
	}
	for k := range numKinds {
		for _, s := range fr.tracks[k] {
			flags := mp4.NonSyncSampleFlags
			if s.key {
				flags = mp4.SyncSampleFlags
			}
			fs := mp4.FullSample{Sample: mp4.NewSample(flags, s.dur, uint32(len(s.data)), 0), DecodeTime: s.dts, Data: s.data}
			if err := f.AddFullSampleToTrack(fs, ids[k]); err != nil {
				return nil, err
			}
		}
	}
	var b bytes.Buffer
	if err := f.Encode(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// playlistHeader starts an HLS event playlist over the recording file
// mp4Name whose init segment is initLen bytes: every fragment is a
// segment by byte range, so the playlist needs no files of its own and
// only ever grows (EVENT: players may seek anywhere in the past).
func playlistHeader(mp4Name string, initLen int, max time.Duration) string {
	return fmt.Sprintf("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:EVENT\n"+
		"#EXT-X-MAP:URI=%q,BYTERANGE=\"%d@0\"\n", int(math.Ceil(max.Seconds()))+1, mp4Name, initLen)
}

// playlistSegment is the entry of one fragment at offset off.
func playlistSegment(mp4Name string, dur time.Duration, off int64, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTINF:%.3f,\n#EXT-X-BYTERANGE:%d@%d\n%s\n", dur.Seconds(), n, off, mp4Name)
	return b.String()
}

const playlistEnd = "#EXT-X-ENDLIST\n"
