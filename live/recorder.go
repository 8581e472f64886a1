package live

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// recPacket is a packet handed to the recorder with its arrival time.
type recPacket struct {
	kind int
	p    *rtp.Packet
	at   time.Time
}

// recorder writes one stream into the filesystem while it is live:
// RECORDDIR/{stream}/{start}.mp4 (fragmented MP4, a fragment committed
// about every second) and {start}.m3u8 (an HLS event playlist over the
// same file by byte ranges). It runs on its own goroutine so a slow
// filesystem never delays forwarding: packets it cannot take in time are
// dropped and counted (reelfs_live_record_dropped_packets_total).
type recorder struct {
	s   *Server
	st  *stream
	log *slog.Logger
	in  chan recPacket

	builders [numKinds]*samplebuilder.SampleBuilder
	arrived  [numKinds]map[uint32]time.Time // RTP timestamp -> arrival of its first packet, until its sample is out
	mime     [numKinds]string
	frag     fragmenter
	ids      [numKinds]uint32
	clocks   [numKinds]trackClock
	pending  [numKinds]*sample // the last sample, until the next gives its duration
	lastDur  [numKinds]uint32

	start   time.Time // arrival of the first keyframe; zero before
	key     []byte    // that keyframe: its parameter sets describe the track
	lastKey time.Time
	lastAsk time.Time

	dir, base  string // RECORDDIR/stream, and the file name without extension
	file, list File
	off, lOff  int64
	failed     bool
	fragments  int
	duration   time.Duration
}

func newRecorder(s *Server, st *stream) *recorder {
	r := &recorder{s: s, st: st, log: st.log, in: make(chan recPacket, 8192),
		dir: path.Join(s.cfg.RecordDir, st.name), base: recordBase(st.started)}
	r.frag = fragmenter{target: s.cfg.FragmentTarget, max: s.cfg.FragmentMax}
	if c := st.offer.Video; c != nil {
		var d rtp.Depacketizer = &codecs.VP8Packet{}
		if c.MimeType == webrtc.MimeTypeH264 {
			d = &codecs.H264Packet{IsAVC: true}
		}
		r.builders[kindVideo] = samplebuilder.New(256, d, c.ClockRate)
		r.mime[kindVideo], r.frag.clock[kindVideo] = c.MimeType, c.ClockRate
	}
	if c := st.offer.Audio; c != nil {
		r.builders[kindAudio] = samplebuilder.New(32, &codecs.OpusPacket{}, c.ClockRate)
		r.mime[kindAudio], r.frag.clock[kindAudio] = c.MimeType, c.ClockRate
	}
	r.ids = trackIDs(r.frag.clock)
	for k := range numKinds {
		r.arrived[k] = map[uint32]time.Time{}
	}
	return r
}

// push hands a packet to the recorder without blocking.
func (r *recorder) push(k int, p *rtp.Packet, at time.Time) {
	select {
	case r.in <- recPacket{k, p, at}:
	default:
		r.s.m.recordDropped.Inc()
	}
}

// run records until the stream ends, then finishes the files.
func (r *recorder) run() {
	for {
		select {
		case it := <-r.in:
			r.packet(it)
		case <-r.st.done:
		drain:
			for {
				select {
				case it := <-r.in:
					r.packet(it)
				default:
					break drain
				}
			}
			r.finish()
			return
		}
	}
}

func (r *recorder) packet(it recPacket) {
	b := r.builders[it.kind]
	if b == nil {
		return
	}
	// A sample leaves the builder when the next one begins, and a
	// keyframe's packets are paced out over a while: its first packet's
	// arrival is the best clock of when it was captured, and it is what
	// aligns the tracks at the start of the recording.
	seen := r.arrived[it.kind]
	if _, ok := seen[it.p.Timestamp]; !ok && len(seen) < 1024 {
		seen[it.p.Timestamp] = it.at
	}
	b.Push(it.p)
	for smp := b.Pop(); smp != nil; smp = b.Pop() {
		at, ok := seen[smp.PacketTimestamp]
		if !ok {
			at = it.at
		}
		for ts := range seen {
			if int32(ts-smp.PacketTimestamp) <= 0 {
				delete(seen, ts)
			}
		}
		r.sample(it.kind, smp.Data, smp.PacketTimestamp, at)
	}
}

// sample takes one depacketized frame.
func (r *recorder) sample(k int, data []byte, ts uint32, at time.Time) {
	key := k == kindAudio || isKeyframe(r.mime[k], data)
	if k == kindVideo {
		every := r.s.cfg.RecordKeyframeEvery
		switch {
		case key:
			r.lastKey = at
		case every > 0 && at.Sub(r.lastKey) > every && at.Sub(r.lastAsk) > every/2:
			r.lastAsk = at
			r.st.requestKeyframe("record")
		}
	}
	if r.start.IsZero() {
		// The recording starts at the first video keyframe (audio-only:
		// the first audio frame), so it decodes from its first byte.
		if (r.builders[kindVideo] != nil) != (k == kindVideo) || !key {
			return
		}
		r.start, r.key = at, data
	}
	base := uint64(at.Sub(r.start).Seconds() * float64(r.frag.clock[k]))
	dts := r.clocks[k].at(ts, base)
	if p := r.pending[k]; p != nil {
		p.dur = uint32(max(dts-p.dts, 1))
		r.lastDur[k] = p.dur
		if fr := r.frag.add(k, *p); fr != nil {
			r.write(fr, at)
		}
	}
	r.pending[k] = &sample{dts: dts, key: key, data: data}
}

// finish gives the last samples the duration of the ones before them,
// writes the last fragment, ends the playlist and closes the files.
func (r *recorder) finish() {
	now := time.Now()
	for k, b := range r.builders {
		if b == nil {
			continue
		}
		b.Flush() // the last frame waits in the builder for a next one
		for smp := b.Pop(); smp != nil; smp = b.Pop() {
			r.sample(k, smp.Data, smp.PacketTimestamp, now)
		}
	}
	for k, p := range r.pending {
		if p == nil {
			continue
		}
		p.dur = r.lastDur[k]
		if p.dur == 0 {
			p.dur = r.frag.clock[k] / 30
		}
		if fr := r.frag.add(k, *p); fr != nil {
			r.write(fr, now)
		}
	}
	if fr := r.frag.flush(); fr != nil {
		r.write(fr, now)
	}
	if r.file == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !r.failed {
		if _, err := r.list.WriteAt(ctx, []byte(playlistEnd), r.lOff); err != nil {
			r.fail("end playlist", err)
		}
	}
	if err := r.file.Close(ctx); err != nil && !r.failed {
		r.fail("close", err)
	}
	if err := r.list.Close(ctx); err != nil && !r.failed {
		r.fail("close playlist", err)
	}
	r.log.Info("recording finished", "path", path.Join(r.dir, r.base+".mp4"), "fragments", r.fragments,
		"duration", r.duration.Round(time.Millisecond), "bytes", r.off)
}

func (r *recorder) fail(what string, err error) {
	r.failed = true
	r.s.m.recordErrors.Inc()
	r.log.Error("recording stopped", "op", what, "err", err)
}

// open creates the recording's files and writes the init segment and the
// playlist header.
func (r *recorder) open(ctx context.Context) error {
	init, err := initSegment(r.st.offer, r.key)
	if err != nil {
		return err
	}
	if err := r.s.fs.MkdirAll(ctx, r.dir); err != nil {
		return err
	}
	if r.file, err = r.s.fs.Create(ctx, path.Join(r.dir, r.base+".mp4")); err != nil {
		return err
	}
	if r.list, err = r.s.fs.Create(ctx, path.Join(r.dir, r.base+".m3u8")); err != nil {
		return err
	}
	if err := r.append(ctx, r.file, &r.off, init); err != nil {
		return err
	}
	head := playlistHeader(r.base+".mp4", len(init), r.s.cfg.FragmentMax)
	if err := r.append(ctx, r.list, &r.lOff, []byte(head)); err != nil {
		return err
	}
	r.log.Info("recording", "path", path.Join(r.dir, r.base+".mp4"))
	return nil
}

// append writes p at *off and commits it.
func (r *recorder) append(ctx context.Context, f File, off *int64, p []byte) error {
	if _, err := f.WriteAt(ctx, p, *off); err != nil {
		return err
	}
	if err := f.Flush(ctx); err != nil {
		return err
	}
	*off += int64(len(p))
	return nil
}

// write appends one fragment and its playlist entry, each committed, so
// readers see the fragment within a round trip of its last packet.
func (r *recorder) write(fr *fragment, at time.Time) {
	if r.failed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r.file == nil {
		if err := r.open(ctx); err != nil {
			r.fail("create", err)
			return
		}
	}
	data, err := encodeFragment(fr, r.ids)
	if err != nil {
		r.fail("encode", err)
		return
	}
	off := r.off
	if err := r.append(ctx, r.file, &r.off, data); err != nil {
		r.fail("write", err)
		return
	}
	seg := playlistSegment(r.base+".mp4", fr.dur, off, len(data))
	if err := r.append(ctx, r.list, &r.lOff, []byte(seg)); err != nil {
		r.fail("write playlist", err)
		return
	}
	r.fragments++
	r.duration = fr.start + fr.dur
	r.s.m.recordFragments.Inc()
	r.s.m.recordBytes.Add(float64(len(data)))
	r.s.m.recordLag.Observe(time.Since(at).Seconds())
}

// recordBase names a recording by the time its stream started (UTC, no
// colons, so it needs no escaping in URLs or shells).
func recordBase(t time.Time) string { return t.UTC().Format("2006-01-02T15-04-05.000Z") }

// path is the recording's file path; the file exists once the first
// keyframe arrived.
func (r *recorder) path() string { return fmt.Sprintf("%s/%s.mp4", r.dir, r.base) }
