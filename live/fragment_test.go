package live

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestFragmenterCuts(t *testing.T) {
	const fps = 30
	tests := []struct {
		name    string
		video   bool
		keyEach int // video keyframe every n frames (0: only the first)
		frames  int
		want    []int // frames (video) or packets (audio-only) per fragment
	}{
		{"keyframe every second", true, 30, 90, []int{30, 30, 30}},
		{"keyframe every 1.5s", true, 45, 135, []int{45, 45, 45}},
		{"keyframes every 0.5s", true, 15, 90, []int{30, 30, 30}},
		{"no keyframes: cut at max", true, 0, 130, []int{60, 60, 10}},
		{"audio only", false, 0, 120, []int{50, 50, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fragmenter{target: time.Second, max: 2 * time.Second}
			f.clock[kindAudio] = 48000
			k, dur := kindAudio, uint32(960)
			if tt.video {
				f.clock[kindVideo] = 90000
				k, dur = kindVideo, 90000/fps
			}
			var got []int
			for i := 0; i < tt.frames; i++ {
				key := i == 0 || (tt.keyEach > 0 && i%tt.keyEach == 0)
				if fr := f.add(k, sample{dts: uint64(i) * uint64(dur), dur: dur, key: key}); fr != nil {
					got = append(got, len(fr.tracks[k]))
					if tt.video && tt.keyEach > 0 && !fr.key {
						t.Errorf("fragment %d does not start with a keyframe", fr.seq)
					}
				}
				if tt.video && i%3 == 0 { // audio rides along: 20 ms packets
					for j := 0; j < 5; j++ {
						ts := uint64(i)*1600 + uint64(j)*960
						f.add(kindAudio, sample{dts: ts, dur: 960, key: true})
					}
				}
			}
			if fr := f.flush(); fr != nil {
				got = append(got, len(fr.tracks[k]))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("fragments %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFragmenterAudioFollowsVideo: audio samples land in the fragment
// their time falls in.
func TestFragmenterAudioFollowsVideo(t *testing.T) {
	f := fragmenter{target: time.Second, max: 2 * time.Second}
	f.clock = [numKinds]uint32{90000, 48000}
	var frs []*fragment
	for i := 0; i < 60; i++ { // 2 s of video at 30 fps, keyframe each second
		for a := uint64(i) * 1600; a < uint64(i+1)*1600; a += 960 {
			if a%960 == 0 {
				f.add(kindAudio, sample{dts: a, dur: 960, key: true})
			}
		}
		if fr := f.add(kindVideo, sample{dts: uint64(i) * 3000, dur: 3000, key: i%30 == 0}); fr != nil {
			frs = append(frs, fr)
		}
	}
	frs = append(frs, f.flush())
	if len(frs) != 2 {
		t.Fatalf("%d fragments, want 2", len(frs))
	}
	for i, fr := range frs {
		if fr.start != time.Duration(i)*time.Second || fr.dur != time.Second {
			t.Errorf("fragment %d: start %v dur %v", i, fr.start, fr.dur)
		}
		for _, a := range fr.tracks[kindAudio] {
			at := time.Duration(a.dts) * time.Second / 48000
			if at < fr.start || at >= fr.start+fr.dur {
				t.Errorf("fragment %d [%v, %v) holds audio at %v", i, fr.start, fr.start+fr.dur, at)
			}
		}
	}
}

func TestTrackClock(t *testing.T) {
	var c trackClock
	steps := []struct {
		ts   uint32
		want uint64
	}{
		{4294967000, 100}, {4294967296 - 96, 300}, {104, 500}, {50, 500}, {1104, 1500},
	}
	for _, s := range steps {
		if got := c.at(s.ts, 100); got != s.want {
			t.Fatalf("at(%d) = %d, want %d", s.ts, got, s.want)
		}
	}
}

// memFS is an in-memory FS that keeps, per file, what was committed by
// the last Flush, and calls onFlush after each.
type memFS struct {
	mu      sync.Mutex
	dirs    map[string]bool
	files   map[string]*memFile
	onFlush func(path string, committed []byte)
}

type memFile struct {
	fs        *memFS
	path      string
	data      []byte
	committed []byte
}

func newMemFS() *memFS { return &memFS{dirs: map[string]bool{}, files: map[string]*memFile{}} }

func (m *memFS) MkdirAll(ctx context.Context, p string) error {
	m.mu.Lock()
	m.dirs[p] = true
	m.mu.Unlock()
	return nil
}

func (m *memFS) Create(ctx context.Context, p string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[filepath.Dir(p)] {
		return nil, os.ErrNotExist
	}
	if m.files[p] != nil {
		return nil, os.ErrExist
	}
	f := &memFile{fs: m, path: p}
	m.files[p] = f
	return f, nil
}

func (m *memFS) Open(ctx context.Context, p string) (ReadFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.files[p]
	if f == nil {
		return nil, os.ErrNotExist
	}
	return memReader{bytes.NewReader(f.committed)}, nil
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

func (f *memFile) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(f.data) {
		f.data = append(f.data, make([]byte, need-len(f.data))...)
	}
	copy(f.data[off:], p)
	return len(p), nil
}

func (f *memFile) Flush(ctx context.Context) error {
	f.fs.mu.Lock()
	f.committed = append([]byte(nil), f.data...)
	hook := f.fs.onFlush
	f.fs.mu.Unlock()
	if hook != nil {
		hook(f.path, f.committed)
	}
	return nil
}

func (f *memFile) Close(ctx context.Context) error { return f.Flush(ctx) }

func (m *memFS) committed(suffix string) (string, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, f := range m.files {
		if strings.HasSuffix(p, suffix) {
			return p, f.committed
		}
	}
	return "", nil
}

func needFFmpeg(t testing.TB) {
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it)", bin)
		}
	}
}

// testMedia makes secs seconds of H.264 (keyframe every keyint frames,
// 30 fps) and Opus (20 ms packets) with ffmpeg.
func testMedia(t testing.TB, dir string, secs, keyint int) (h264, ogg string) {
	h264, ogg = filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.ogg")
	run := func(args ...string) {
		out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=320x180:rate=30:duration=%d", secs),
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", strconv.Itoa(keyint),
		"-keyint_min", strconv.Itoa(keyint), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1", h264)
	run("-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:duration=%d", secs), "-c:a", "libopus",
		"-page_duration", "20000", "-frame_duration", "20", ogg)
	return h264, ogg
}

// accessUnits reads an Annex B file into AVC (length-prefixed) access
// units, one per frame.
func accessUnits(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var cur []byte
	for i := 0; i < 1e6; i++ {
		nal, err := r.NextNAL()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cur = binary.BigEndian.AppendUint32(cur, uint32(len(nal.Data)))
		cur = append(cur, nal.Data...)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			out = append(out, cur)
			cur = nil
		}
	}
	return out
}

// opusPackets reads the packets of an Ogg Opus file (one per page).
func opusPackets(t testing.TB, path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 0; i < 1e6; i++ {
		page, _, err := r.ParseNextPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		out = append(out, page)
	}
	return out
}

func ffprobe(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestRecordingPlaysBack records 5 s of H.264 + Opus through the recorder
// into memory and checks with ffprobe: the growing file plays at every
// commit, the finished one has every frame and the right duration, and
// every HLS segment read back on its own lasts exactly its EXTINF.
func TestRecordingPlaysBack(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	const secs, keyint = 5, 45
	h264, ogg := testMedia(t, dir, secs, keyint)
	video, audio := accessUnits(t, h264), opusPackets(t, ogg)
	if len(video) != secs*30 || len(audio) < secs*50-2 {
		t.Fatalf("test media: %d frames, %d opus packets", len(video), len(audio))
	}

	cfg := DefaultConfig()
	s := &Server{cfg: cfg, log: testLogger(t), m: newMetrics(prometheus.NewRegistry())}
	fs := newMemFS()
	s.fs = fs
	var growing []float64 // durations ffprobe read from committed prefixes
	fs.onFlush = func(p string, data []byte) {
		if !strings.HasSuffix(p, ".mp4") || len(growing) >= 3 || len(data) < 2000 {
			return
		}
		f := filepath.Join(dir, "growing.mp4")
		os.WriteFile(f, data, 0o644)
		d, _ := strconv.ParseFloat(strings.TrimSpace(ffprobe(t, "-show_entries", "format=duration", "-of", "csv=p=0", f)), 64)
		growing = append(growing, d)
	}
	st := &stream{s: s, name: "cam", offer: Offer{
		Video: &Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
		Audio: &Codec{Kind: webrtc.RTPCodecTypeAudio, MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}, started: time.Unix(1700000000, 0), log: s.log, done: make(chan struct{})}
	r := newRecorder(s, st)
	t0 := time.Now()
	ai := 0
	for i, au := range video {
		vt := time.Duration(i) * time.Second / 30
		for ai < len(audio) && time.Duration(ai)*20*time.Millisecond <= vt {
			r.sample(kindAudio, audio[ai], uint32(ai*960), t0.Add(time.Duration(ai)*20*time.Millisecond))
			ai++
		}
		r.sample(kindVideo, au, uint32(i*3000+12345), t0.Add(vt))
	}
	for ; ai < len(audio); ai++ {
		r.sample(kindAudio, audio[ai], uint32(ai*960), t0.Add(time.Duration(ai)*20*time.Millisecond))
	}
	r.finish()

	mp4Path, data := fs.committed(".mp4")
	if mp4Path != "/live/cam/2023-11-14T22-13-20.000Z.mp4" {
		t.Errorf("recorded to %s", mp4Path)
	}
	f := filepath.Join(dir, "rec.mp4")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := ffprobe(t, "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames:format=duration", "-of", "csv=p=0", f)
	lines := strings.Fields(out)
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "h264,150") || !strings.HasPrefix(lines[1], "opus,") {
		t.Errorf("ffprobe: %q, want h264 with 150 frames and opus", out)
	}
	if d, _ := strconv.ParseFloat(lines[len(lines)-1], 64); d < secs-0.05 || d > secs+0.05 {
		t.Errorf("duration %v, want %d s", d, secs)
	}
	t.Logf("growing file durations: %v", growing)
	if len(growing) < 3 || !(growing[0] > 0 && growing[1] > growing[0] && growing[2] > growing[1]) {
		t.Errorf("the growing file read back with durations %v; want them growing", growing)
	}

	// The playlist: one segment per fragment, each starting with a
	// keyframe here (keyint 1.5 s > target 1 s); read each segment back
	// with the init segment and compare ffprobe's duration to EXTINF.
	_, list := fs.committed(".m3u8")
	pl := string(list)
	if !strings.HasSuffix(pl, playlistEnd) || !strings.Contains(pl, "#EXT-X-PLAYLIST-TYPE:EVENT") {
		t.Errorf("playlist:\n%s", pl)
	}
	initRange := regexp.MustCompile(`BYTERANGE="(\d+)@0"`).FindStringSubmatch(pl)
	initLen, _ := strconv.Atoi(initRange[1])
	segs := regexp.MustCompile(`#EXTINF:([\d.]+),\n#EXT-X-BYTERANGE:(\d+)@(\d+)`).FindAllStringSubmatch(pl, -1)
	if len(segs) != 4 {
		t.Fatalf("%d segments, want 4 (1.5 s each and a last 0.5 s)", len(segs))
	}
	total := 0.0
	for i, sg := range segs {
		dur, _ := strconv.ParseFloat(sg[1], 64)
		n, _ := strconv.Atoi(sg[2])
		off, _ := strconv.Atoi(sg[3])
		total += dur
		seg := append(append([]byte(nil), data[:initLen]...), data[off:off+n]...)
		p := filepath.Join(dir, fmt.Sprintf("seg%d.mp4", i))
		os.WriteFile(p, seg, 0o644)
		vd := ffprobe(t, "-select_streams", "v", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", p)
		frames, _ := strconv.Atoi(strings.TrimSpace(vd))
		if got := float64(frames) / 30; got < dur-0.001 || got > dur+0.001 {
			t.Errorf("segment %d: %d frames (%.3f s), EXTINF %.3f", i, frames, got, dur)
		}
	}
	if total < secs-0.001 || total > secs+0.001 {
		t.Errorf("segments add up to %.3f s, want %d", total, secs)
	}
}

// failFS refuses to create files, as a full or unreachable filesystem.
type failFS struct{ *memFS }

func (failFS) Create(ctx context.Context, p string) (File, error) {
	return nil, fmt.Errorf("create %s: %w", p, os.ErrPermission)
}

// TestRecordingFailureStopsOnlyTheRecording: a filesystem error stops
// the recording once (logged and counted) and nothing else.
func TestRecordingFailureStopsOnlyTheRecording(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := &Server{cfg: DefaultConfig(), log: testLogger(t), m: newMetrics(reg), fs: failFS{newMemFS()}}
	st := &stream{s: s, name: "cam", offer: Offer{
		Audio: &Codec{Kind: webrtc.RTPCodecTypeAudio, MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}, started: time.Unix(1700000000, 0), log: s.log, done: make(chan struct{})}
	r := newRecorder(s, st)
	t0 := time.Now()
	for i := 0; i < 200; i++ { // 4 s of audio: fragments are due after 1 s
		r.sample(kindAudio, []byte{0xfc, 1, 2, 3}, uint32(i*960), t0.Add(time.Duration(i)*20*time.Millisecond))
	}
	r.finish()
	if !r.failed {
		t.Fatal("the recorder did not notice the failure")
	}
	if got := counterValue(s.m.recordErrors); got != 1 {
		t.Errorf("record errors %v, want 1 (stop once, not per fragment)", got)
	}
	if got := counterValue(s.m.recordFragments); got != 0 {
		t.Errorf("%v fragments counted as recorded", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
