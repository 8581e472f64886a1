package live

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRecordingResolutionChange: a publisher that changes resolution
// mid-stream (new SPS/PPS in band, as a browser does under load) gives a
// recording whose every frame decodes.
func TestRecordingResolutionChange(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	var aus [][]byte
	for _, size := range []string{"320x180", "640x360"} {
		f := filepath.Join(dir, size+".h264")
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size="+size+":rate=30:duration=2",
			"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1", f).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		aus = append(aus, accessUnits(t, f)...)
	}
	s := &Server{cfg: DefaultConfig(), log: testLogger(t), m: newMetrics(prometheus.NewRegistry())}
	fs := newMemFS()
	s.fs = fs
	st := &stream{s: s, name: "cam", offer: Offer{
		Video: &Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeH264, ClockRate: 90000},
	}, started: time.Unix(1700000000, 0), log: s.log, done: make(chan struct{})}
	r := newRecorder(s, st)
	t0 := time.Now()
	for i, au := range aus {
		r.sample(kindVideo, au, uint32(i*3000), t0.Add(time.Duration(i)*time.Second/30))
	}
	r.finish()
	_, data := fs.committed(".mp4")
	f := filepath.Join(dir, "rec.mp4")
	os.WriteFile(f, data, 0o644)
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", f, "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("decoding the recording: %v\n%s", err, out)
	}
	frames := ffprobe(t, "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", f)
	if strings.TrimSpace(frames) != "120" {
		t.Errorf("%s frames, want 120", frames)
	}
	t.Logf("frames: %s", strings.TrimSpace(frames))
}
