package live

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/pion/webrtc/v4"
)

// vodFile makes secs seconds of H.264 (keyframe each second) + Opus as
// MP4 with ffmpeg; fragmented with movflags.
func vodFile(t testing.TB, secs int, movflags string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "v.mp4")
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=320x180:rate=30:duration=%d", secs),
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", secs),
		"-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "libopus"}
	if movflags != "" {
		args = append(args, "-movflags", movflags)
	}
	if b, err := exec.Command("ffmpeg", append(args, out)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIndexMP4(t *testing.T) {
	needFFmpeg(t)
	for _, tt := range []struct{ name, movflags string }{
		{"progressive", "+faststart"},
		{"fragmented", "frag_keyframe+empty_moov+default_base_moof"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := vodFile(t, 4, tt.movflags)
			f, err := mp4.DecodeFile(bytes.NewReader(data), mp4.WithDecodeMode(mp4.DecModeLazyMdat))
			if err != nil {
				t.Fatal(err)
			}
			tracks, err := indexMP4(f)
			if err != nil {
				t.Fatal(err)
			}
			v, a := tracks[kindVideo], tracks[kindAudio]
			if v == nil || a == nil || v.codec.MimeType != webrtc.MimeTypeH264 || a.codec.MimeType != webrtc.MimeTypeOpus {
				t.Fatalf("tracks %+v %+v", v, a)
			}
			if len(v.samples) != 120 {
				t.Errorf("%d video samples, want 120", len(v.samples))
			}
			keys := 0
			for i, s := range v.samples {
				if s.key {
					keys++
				}
				// Each sample's bytes are where the index says: an AVC
				// sample's NAL lengths add up to its size.
				b := data[s.off : s.off+int64(s.size)]
				n := 0
				for len(b) >= 4 {
					l := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
					b = b[min(4+l, len(b)):]
					n += 4 + l
				}
				if n != int(s.size) {
					t.Fatalf("sample %d at %d: NAL lengths add to %d, size %d", i, s.off, n, s.size)
				}
			}
			if keys != 4 {
				t.Errorf("%d keyframes, want 4", keys)
			}
			if d := a.seconds(a.samples[len(a.samples)-1]); d < 3900*time.Millisecond {
				t.Errorf("audio ends at %v", d)
			}
			idx, start := startIndexes(tracks, 2500*time.Millisecond)
			// ffmpeg may start a track a few ms late (an edit list it
			// writes for the encoder delay).
			if start < 2*time.Second || start > 2050*time.Millisecond || idx[kindVideo] != 60 || a.seconds(a.samples[idx[kindAudio]]) < start ||
				a.seconds(a.samples[idx[kindAudio]-1]) >= start {
				t.Errorf("start at 2.5s: from %v, indexes %v", start, idx)
			}
		})
	}
}

// TestVODPlayback plays a stored file to a pion viewer from ?t=2: the
// viewer gets about the last two seconds, then the connection closes.
func TestVODPlayback(t *testing.T) {
	needFFmpeg(t)
	fs := newMemFS()
	fs.MkdirAll(context.Background(), "/clips")
	f, _ := fs.Create(context.Background(), "/clips/a.mp4")
	data := vodFile(t, 4, "frag_keyframe+empty_moov+default_base_moof")
	f.WriteAt(context.Background(), data, 0)
	f.Flush(context.Background())
	s := startServer(t, fs, nil)

	if code, body, _ := post(t, "http://"+s.Addr()+"/whep/vod/clips/nope.mp4", "", "application/sdp",
		[]byte(offerSDP("video recvonly "+h264CB))); code != http.StatusNotFound {
		t.Errorf("missing file: %d %s", code, body)
	}
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	}
	got := make(chan string, 10000)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			got <- tr.Kind().String()
		}
	})
	start := time.Now()
	if code, body, _ := connect(t, pc, "http://"+s.Addr()+"/whep/vod/clips/a.mp4?t=2", ""); code != http.StatusCreated {
		t.Fatalf("vod: %d %s", code, body)
	}
	waitState(t, pc, 10*time.Second, webrtc.PeerConnectionStateConnected)
	waitState(t, pc, 20*time.Second, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected)
	took := time.Since(start)
	counts := map[string]int{}
	for len(got) > 0 {
		counts[<-got]++
	}
	if counts["video"] < 60 || counts["audio"] < 90 {
		t.Errorf("received %v packets", counts)
	}
	t.Logf("played 2 s from t=2 in %v: %v packets", took.Round(time.Millisecond), counts)
}
