package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// liveAPI is a pion API for test peers: candidates on 127.0.0.1 only,
// and pion's default interceptors (NACK, reports), as a browser has.
func liveAPI(t testing.TB) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(reg))
}

// whipConnect sends pc's offer (all candidates gathered) to url and
// applies the answer; it returns the session's Location.
func whipConnect(t testing.TB, pc *webrtc.PeerConnection, url string) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, err := http.Post(url, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)}); err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Location")
}

func waitConnected(t testing.TB, pc *webrtc.PeerConnection, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
			return
		}
	}
	t.Fatalf("peer connection %s after %v", pc.ConnectionState(), d)
}

// liveMedia makes secs seconds of H.264 (30 fps, keyframe each second,
// about rate bit/s) and Opus in 20 ms packets with ffmpeg, and returns
// the video as Annex B access units and the Opus packets.
func liveMedia(t testing.TB, secs int, rate string) (video [][]byte, audio [][]byte) {
	t.Helper()
	dir := t.TempDir()
	h264, ogg := filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.ogg")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=640x360:rate=30:duration=%d", secs), "-c:v", "libx264",
			"-preset", "veryfast", "-profile:v", "baseline", "-bf", "0", "-g", "30", "-keyint_min", "30",
			"-sc_threshold", "0", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-pix_fmt", "yuv420p",
			"-x264-params", "repeat-headers=1", h264},
		{"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=48000:duration=%d", secs), "-c:a", "libopus",
			"-b:a", "64k", "-page_duration", "20000", "-frame_duration", "20", ogg},
	} {
		if out, err := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	f, err := os.Open(h264)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	// A frame may have several slices: a new access unit starts with a
	// parameter set or a slice whose first_mb_in_slice is 0 (its first
	// exp-Golomb bit is 1) once the current one has a slice.
	var cur []byte
	slices := 0
	for i := 0; i < 1e6; i++ {
		nal, err := r.NextNAL()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		isSlice := nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr
		if slices > 0 && (!isSlice || (len(nal.Data) > 1 && nal.Data[1]&0x80 != 0)) {
			video, cur, slices = append(video, cur), nil, 0
		}
		cur = append(append(cur, 0, 0, 0, 1), nal.Data...)
		if isSlice {
			slices++
		}
	}
	if slices > 0 {
		video = append(video, cur)
	}
	if len(video) != secs*30 {
		t.Fatalf("%d access units in %d s of 30 fps video", len(video), secs)
	}
	a, err := os.Open(ogg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	or, _, err := oggreader.NewWith(a)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1e6; i++ {
		page, _, err := or.ParseNextPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(page, []byte("OpusTags")) {
			audio = append(audio, page)
		}
	}
	return video, audio
}

// livePublisher is a pion WHIP publisher that packetizes itself, so it
// knows every packet it sent.
type livePublisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	vpack, apack rtp.Packetizer
	location     string
	sentVideo    int
	sentAudio    int
	sendTimes    sync.Map // video sequence number -> time.Time of sending
}

func newLivePublisher(t testing.TB, url string) *livePublisher {
	t.Helper()
	pc, err := liveAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &livePublisher{pc: pc}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go func() { // drain RTCP so the interceptors see it (NACKs are answered by pion's responder)
			for {
				if _, _, err := tc.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	// Payload types and SSRCs are rewritten by the track binding.
	p.vpack = rtp.NewPacketizer(1200, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	p.apack = rtp.NewPacketizer(1200, 0, 0, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	p.location = whipConnect(t, pc, url)
	return p
}

// stream sends the media in real time; it returns early when ctx ends.
func (p *livePublisher) stream(ctx context.Context, t testing.TB, video, audio [][]byte) {
	start := time.Now()
	vi, ai := 0, 0
	for vi < len(video) || ai < len(audio) {
		vAt := time.Duration(vi) * time.Second / 30
		aAt := time.Duration(ai) * 20 * time.Millisecond
		isVideo := ai >= len(audio) || (vi < len(video) && vAt <= aAt)
		at := aAt
		if isVideo {
			at = vAt
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(at))):
		}
		if isVideo {
			for _, pk := range p.vpack.Packetize(video[vi], 3000) {
				p.sendTimes.Store(pk.SequenceNumber, time.Now())
				if err := p.video.WriteRTP(pk); err != nil {
					t.Errorf("write video: %v", err)
					return
				}
				p.sentVideo++
			}
			vi++
		} else {
			for _, pk := range p.apack.Packetize(audio[ai], 960) {
				if err := p.audio.WriteRTP(pk); err != nil {
					t.Errorf("write audio: %v", err)
					return
				}
				p.sentAudio++
			}
			ai++
		}
	}
}

// liveViewer is a pion WHEP viewer: it keeps every video sequence number
// it got, rebuilds H.264 frames, and keeps its first keyframe.
type liveViewer struct {
	pc       *webrtc.PeerConnection
	mu       sync.Mutex
	video    map[uint16]bool
	audio    int
	frames   int
	keyframe []byte // the first IDR access unit, Annex B
	keys     int
	annexB   bytes.Buffer // every frame, when keep is set
	keep     bool
	latency  []time.Duration
	pub      *livePublisher
}

func newLiveViewer(t testing.TB, url string, pub *livePublisher, keep bool) *liveViewer {
	t.Helper()
	pc, err := liveAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	v := &liveViewer{pc: pc, video: map[uint16]bool{}, keep: keep, pub: pub}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		var sb *samplebuilder.SampleBuilder
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			sb = samplebuilder.New(512, &codecs.H264Packet{}, 90000)
		}
		for {
			pk, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			now := time.Now()
			v.mu.Lock()
			if sb == nil {
				v.audio++
				v.mu.Unlock()
				continue
			}
			if !v.video[pk.SequenceNumber] {
				v.video[pk.SequenceNumber] = true
				if sent, ok := v.pub.sendTimes.Load(pk.SequenceNumber); ok {
					v.latency = append(v.latency, now.Sub(sent.(time.Time)))
				}
				sb.Push(pk)
				for s := sb.Pop(); s != nil; s = sb.Pop() {
					v.frames++
					if hasIDR(s.Data) {
						v.keys++
						if v.keyframe == nil {
							v.keyframe = s.Data
						}
					}
					if v.keep {
						v.annexB.Write(s.Data)
					}
				}
			}
			v.mu.Unlock()
		}
	})
	whipConnect(t, pc, url)
	return v
}

// hasIDR reports whether an Annex B access unit holds an IDR slice.
func hasIDR(au []byte) bool {
	for i := 0; i+3 < len(au); i++ {
		if au[i] == 0 && au[i+1] == 0 && au[i+2] == 1 && au[i+3]&0x1f == 5 {
			return true
		}
	}
	return false
}

type liveStream struct {
	Name      string `json:"name"`
	Codecs    string `json:"codecs"`
	Viewers   int    `json:"viewers"`
	Recording string `json:"recording"`
	Playlist  string `json:"playlist"`
}

func liveStreams(t testing.TB, base string) []liveStream {
	t.Helper()
	resp, err := http.Get(base + "/api/streams")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []liveStream
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLiveFanOutAndRecording is the end-to-end case: a pion
// publisher streams 20 s of ffmpeg-made H.264 + Opus through WHIP to 20
// pion WHEP viewers; every viewer gets every video packet and decodable
// keyframes; the recording plays over HTTP while it grows, and at the
// end has both streams, ~20 s, and a frame at 15 s.
func TestLiveFanOutAndRecording(t *testing.T) {
	needTool(t, "ffmpeg", "ffprobe")
	const secs, viewers = 20, 20
	video, audio := liveMedia(t, secs, "1M")
	// With FUSE, the growing recording is also read through the mount.
	_, errFuse := os.Stat("/dev/fuse")
	_, errFM := exec.LookPath("fusermount3")
	withMount := os.Geteuid() == 0 && errFuse == nil && errFM == nil
	c := startCluster(t, clusterOpts{http: true, live: true, mount: withMount})
	base := "http://" + c.live

	pub := newLivePublisher(t, base+"/whip/cam")
	waitConnected(t, pub.pc, 10*time.Second)
	vs := make([]*liveViewer, viewers)
	for i := range vs {
		vs[i] = newLiveViewer(t, base+"/whep/cam", pub, i < 2)
	}
	for _, v := range vs {
		waitConnected(t, v.pc, 15*time.Second)
	}
	// The server forwards to a viewer once its side of the connection is
	// up too; it counts those.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if s := liveStreams(t, base); len(s) == 1 && s[0].Viewers == viewers {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("server does not count %d viewers: %+v", viewers, liveStreams(t, base))
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); pub.stream(ctx, t, video, audio) }()

	// While live: the recording over HTTP grows and plays.
	info := liveStreams(t, base)[0]
	if !strings.HasPrefix(info.Recording, "/live/cam/") {
		t.Fatalf("recording path %q", info.Recording)
	}
	recURL := "http://" + c.http + info.Recording
	var growing []float64
	for _, at := range []time.Duration{6 * time.Second, 12 * time.Second} {
		select {
		case <-time.After(at - time.Duration(len(growing))*6*time.Second):
		case <-done:
		}
		d, types := probe(t, recURL)
		growing = append(growing, d)
		if strings.Join(types, ",") != "video,audio" {
			t.Errorf("live recording has streams %v", types)
		}
		if withMount {
			md, mtypes := probe(t, filepath.Join(c.mount, info.Recording))
			t.Logf("through the mount at %v: %.2f s %v", at, md, mtypes)
			if md < d-2 || len(mtypes) != 2 {
				t.Errorf("the mount reads the growing recording as %.2f s %v (HTTP: %.2f s)", md, mtypes, d)
			}
		}
	}
	t.Logf("recording duration while live: %v", growing)
	if !(growing[0] > 2 && growing[1] > growing[0]+3) {
		t.Errorf("recording did not grow while live: %v", growing)
	}
	<-done

	// Every viewer got every video packet (NACKs may have fetched a few
	// again), keyframes each second that decode, and the audio.
	time.Sleep(500 * time.Millisecond)
	var lat []time.Duration
	for i, v := range vs {
		v.mu.Lock()
		got, frames, keys, audioN, key := len(v.video), v.frames, v.keys, v.audio, v.keyframe
		lat = append(lat, v.latency...)
		v.mu.Unlock()
		if got != pub.sentVideo {
			t.Errorf("viewer %d: %d of %d video packets", i, got, pub.sentVideo)
		}
		if frames < len(video)-1 || keys < secs-1 {
			t.Errorf("viewer %d: %d frames, %d keyframes; sent %d frames, %d keyframes", i, frames, keys, len(video), secs)
		}
		if audioN < pub.sentAudio*99/100 {
			t.Errorf("viewer %d: %d of %d audio packets", i, audioN, pub.sentAudio)
		}
		if key == nil {
			t.Errorf("viewer %d: no keyframe", i)
			continue
		}
		f := filepath.Join(t.TempDir(), "key.h264")
		os.WriteFile(f, key, 0o644)
		if out, err := exec.Command("ffmpeg", "-v", "error", "-i", f, "-frames:v", "1", "-f", "null", "-").CombinedOutput(); err != nil {
			t.Errorf("viewer %d: its first keyframe does not decode: %v\n%s", i, err, out)
		}
	}
	for i := 0; i < 2; i++ { // two viewers' whole streams decode frame by frame
		f := filepath.Join(t.TempDir(), "all.h264")
		os.WriteFile(f, vs[i].annexB.Bytes(), 0o644)
		out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", f).CombinedOutput()
		// The sample builder gives a frame out when the next one starts,
		// so the last one stays in it.
		if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(len(video)-1) {
			t.Errorf("viewer %d's stream decodes to %q frames (%v), want %d", i, out, err, len(video)-1)
		}
	}
	if len(lat) > 0 {
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		t.Logf("publisher send to viewer receive over %d packets: p50 %v p99 %v", len(lat), p50, p99)
	}

	// How long fragments took from their last packet to their commit
	// (the server's histogram): logged, not asserted, on a shared machine.
	if resp, err := http.Get(base + "/-/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "reelfs_live_record_lag_seconds") {
				t.Log(line)
			}
		}
	}

	// The publisher leaves: viewers are told, the recording is finished.
	req, _ := http.NewRequest("DELETE", base+pub.location, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	for i, v := range vs {
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st := v.pc.ConnectionState()
			if st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("viewer %d still %s after the stream ended", i, st)
			}
		}
	}
	plURL := "http://" + c.http + info.Playlist
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(plURL)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasSuffix(string(b), "#EXT-X-ENDLIST\n") {
				if n := strings.Count(string(b), "#EXTINF:"); n < secs-2 || n > secs+2 {
					t.Errorf("playlist has %d segments for %d s", n, secs)
				}
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("playlist %s never ended", plURL)
		}
	}
	d, types := probe(t, recURL)
	if d < secs-1 || d > secs+1 || strings.Join(types, ",") != "video,audio" {
		t.Errorf("finished recording: %.2f s, streams %v; want ~%d s of video and audio", d, types, secs)
	}
	// The publisher started audio and video together: so do the tracks
	// of the recording (aligned by the arrival of each track's first
	// recorded frame).
	if out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time", "-of", "csv=p=0", recURL).CombinedOutput(); err != nil {
		t.Errorf("ffprobe start times: %v\n%s", err, out)
	} else {
		starts := map[string]float64{}
		for _, line := range strings.Fields(string(out)) {
			kind, v, _ := strings.Cut(line, ",")
			starts[kind], _ = strconv.ParseFloat(v, 64)
		}
		t.Logf("recording start times: %v", starts)
		if d := starts["audio"] - starts["video"]; d < -0.1 || d > 0.1 {
			t.Errorf("audio starts %.3f s after video in the recording", d)
		}
	}
	png := filepath.Join(t.TempDir(), "at15.png")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-ss", "15", "-i", recURL, "-frames:v", "1", png).CombinedOutput(); err != nil {
		t.Errorf("ffmpeg -ss 15: %v\n%s", err, out)
	} else if st, err := os.Stat(png); err != nil || st.Size() == 0 {
		t.Errorf("no frame at 15 s")
	}
	// The recording plays back over WHEP from 15 s: about 5 s of it
	// arrive, then the server closes the connection.
	vod := newLiveViewer(t, base+"/whep/vod"+info.Recording+"?t=15", pub, false)
	start := time.Now()
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := vod.pc.ConnectionState()
		if st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("WHEP playback still %s after 20 s", st)
		}
	}
	vod.mu.Lock()
	vframes, vkeys, vaudio := vod.frames, vod.keys, vod.audio
	vod.mu.Unlock()
	t.Logf("WHEP playback from 15 s: %d frames (%d keyframes), %d audio packets in %v", vframes, vkeys, vaudio, time.Since(start).Round(time.Millisecond))
	if vframes < 140 || vframes > 160 || vkeys < 4 || vaudio < 240 {
		t.Errorf("WHEP playback from 15 s of a 20 s recording: %d frames, %d keyframes, %d audio packets", vframes, vkeys, vaudio)
	}

	// The HLS playlist plays too, from its middle.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-ss", "10", "-i", plURL, "-frames:v", "1", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Errorf("ffmpeg on the HLS playlist: %v\n%s", err, out)
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := 1; i < len(s); i++ { // insertion sort is fine for a few 10k
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[(len(s)-1)*p/100]
}

// TestLiveBrowser: headless Chromium publishes its fake camera through
// the publish page (WHIP), a second page watches through WHEP and its
// video advances, and a third page plays the growing recording from
// httpd. Screenshots go to $REELFS_ARTIFACTS (or a temp dir).
func TestLiveBrowser(t *testing.T) {
	needTool(t, "chromium", "ffprobe")
	c := startCluster(t, clusterOpts{http: true, live: true})
	base := "http://" + c.live
	artifacts := os.Getenv("REELFS_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	os.MkdirAll(artifacts, 0o755)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true), chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // start the browser; tabs open in it
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	shot := func(tab context.Context, name string) {
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			return
		}
		p := filepath.Join(artifacts, "live-"+name+".png")
		os.WriteFile(p, png, 0o644)
		t.Logf("screenshot: %s", p)
	}
	// poll evaluates expr every 200 ms until cond holds or ctx ends.
	poll := func(tab context.Context, what, expr string, cond func(float64) bool) float64 {
		var v float64
		for {
			got, err := chromedp.Run(tab, chromedp.Evaluate[float64](expr))
			if err == nil {
				v = got
				if cond(v) {
					return v
				}
			}
			select {
			case <-ctx.Done():
				status, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
				t.Fatalf("%s: stuck at %v (err %v); page says:\n%s\nserver log:\n%s", what, v, err, status, tail(c.log.String(), 3000))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}

	pubTab, cancelPub := chromedp.NewContext(ctx)
	defer cancelPub()
	if err := chromedp.Do(pubTab, chromedp.Navigate(base+"/live/cam?publish")); err != nil {
		t.Fatal(err)
	}
	var info liveStream
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if s := liveStreams(t, base); len(s) == 1 {
			info = s[0]
			break
		}
		if time.Now().After(end) {
			status, _ := chromedp.Run(pubTab, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("the publish page did not start a stream; it says:\n%s\n%s", status, tail(c.log.String(), 3000))
		}
	}

	watchTab, cancelWatch := chromedp.NewContext(ctx)
	defer cancelWatch()
	if err := chromedp.Do(watchTab, chromedp.Navigate(base+"/live/cam")); err != nil {
		t.Fatal(err)
	}
	frames := `document.getElementById("video").getVideoPlaybackQuality().totalVideoFrames`
	first := poll(watchTab, "watch page frames", frames, func(v float64) bool { return v > 10 })
	poll(watchTab, "watch page frames advance", frames, func(v float64) bool { return v > first+30 })
	shot(watchTab, "watch")
	shot(pubTab, "publish")

	// The growing recording plays in a third page (httpd's player). A
	// page loads the file as long as it is then, so wait until it holds
	// a couple of seconds (under load the watch page can get ahead of it).
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out, _ := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
			"http://"+c.http+info.Recording).Output()
		if d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && d >= 2 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the browser's recording did not reach 2 s in 30 s")
		}
	}
	recTab, cancelRec := chromedp.NewContext(ctx)
	defer cancelRec()
	if err := chromedp.Do(recTab, chromedp.Navigate("http://"+c.http+"/player"+info.Recording)); err != nil {
		t.Fatal(err)
	}
	poll(recTab, "recording plays", `(() => { const v = document.getElementById("player"); if (v.paused) v.play(); return v.currentTime })()`,
		func(v float64) bool { return v > 1 })
	shot(recTab, "recording")
	d, types := probe(t, "http://"+c.http+info.Recording)
	t.Logf("browser recording %s: %.1f s, %v, codecs %s", info.Recording, d, types, info.Codecs)
	if len(types) != 2 || info.Codecs != "video/H264 + audio/opus" {
		t.Errorf("recording of the browser stream has streams %v, codecs %s", types, info.Codecs)
	}
	stats, _ := chromedp.Run(watchTab, chromedp.Evaluate[string](`document.getElementById("stats").textContent`))
	if !strings.Contains(stats, "viewers: 1") || !strings.Contains(stats, "latency") {
		t.Errorf("watch page stats: %q", stats)
	}

	// The publisher's tab goes away without a DELETE: the server notices,
	// the stream ends and its recording is finished and plays.
	cancelPub()
	for end := time.Now().Add(20 * time.Second); len(liveStreams(t, base)) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the stream outlived its publisher's tab by 20 s")
		}
	}
	waitEndList(t, "http://"+c.http+info.Playlist)
	if d2, types := probe(t, "http://"+c.http+info.Recording); d2 < d || len(types) != 2 {
		t.Errorf("finished browser recording: %.1f s, %v", d2, types)
	}

	// The stream comes back: the watch page, which kept retrying, plays it.
	stalled, _ := chromedp.Run(watchTab, chromedp.Evaluate[float64](frames))
	pub2, cancelPub2 := chromedp.NewContext(ctx)
	if err := chromedp.Do(pub2, chromedp.Navigate(base+"/live/cam?publish")); err != nil {
		t.Fatal(err)
	}
	resumed := poll(watchTab, "watch page resumes", frames, func(v float64) bool { return v != stalled && v > 0 })
	poll(watchTab, "resumed watch page advances", frames, func(v float64) bool { return v > resumed+30 })
	shot(watchTab, "watch-resumed")
	cancelPub2()
	for end := time.Now().Add(20 * time.Second); len(liveStreams(t, base)) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the second stream outlived its publisher's tab by 20 s")
		}
	}

	// VP8: the page offers only VP8 with ?codec=vp8; it is forwarded and
	// recorded as such.
	vp8Tab, cancelVP8 := chromedp.NewContext(ctx)
	defer cancelVP8()
	if err := chromedp.Do(vp8Tab, chromedp.Navigate(base+"/live/cam8?publish&codec=vp8")); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if s := liveStreams(t, base); len(s) == 1 {
			info = s[0]
			break
		}
		if time.Now().After(end) {
			t.Fatal("the VP8 publish page did not start a stream")
		}
	}
	if info.Codecs != "video/VP8 + audio/opus" {
		t.Errorf("?codec=vp8 published %s", info.Codecs)
	}
	watch8, cancelWatch8 := chromedp.NewContext(ctx)
	defer cancelWatch8()
	if err := chromedp.Do(watch8, chromedp.Navigate(base+"/live/cam8")); err != nil {
		t.Fatal(err)
	}
	first = poll(watch8, "VP8 watch page frames", frames, func(v float64) bool { return v > 10 })
	poll(watch8, "VP8 watch page frames advance", frames, func(v float64) bool { return v > first+30 })
	shot(watch8, "watch-vp8")
	cancelVP8()
	for end := time.Now().Add(20 * time.Second); len(liveStreams(t, base)) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the VP8 stream outlived its publisher's tab by 20 s")
		}
	}
	waitEndList(t, "http://"+c.http+info.Playlist)
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", "http://"+c.http+info.Recording).CombinedOutput()
	if err != nil || strings.Fields(string(out))[0] != "vp8" {
		t.Errorf("VP8 recording: %q %v", out, err)
	}
	png := filepath.Join(artifacts, "live-vp8-recording-frame.png")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-ss", "1", "-i", "http://"+c.http+info.Recording, "-frames:v", "1", png).CombinedOutput(); err != nil {
		t.Errorf("a frame of the VP8 recording: %v\n%s", err, out)
	}
}

// waitEndList waits until the HLS playlist at url has its ENDLIST.
func waitEndList(t testing.TB, url string) string {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.HasSuffix(string(b), "#EXT-X-ENDLIST\n") {
				return string(b)
			}
		}
		if time.Now().After(end) {
			t.Fatalf("playlist %s never ended", url)
		}
	}
}

// TestLiveSeparateProcess runs `reelfs live` as its own process against
// a cluster (as on a machine of its own), with a token: a publisher
// without it is refused, with it its stream is recorded into the
// cluster, and SIGTERM finishes the recording before the process exits.
func TestLiveSeparateProcess(t *testing.T) {
	needTool(t, "ffmpeg", "ffprobe")
	video, audio := liveMedia(t, 3, "500k")
	c := startCluster(t, clusterOpts{http: true})
	addr, media := freeAddr(t), freeUDPAddr(t)
	p := startProc(t, "live", "--meta", c.meta, "--listen", addr, "--media", media, "--token", "tok",
		"--http-base", "http://"+c.http, "--record-dir", "/rec")
	defer p.stop(t, 20*time.Second)
	base := "http://" + addr
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/healthy"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(end) || p.exited() {
			t.Fatalf("reelfs live did not come up\n%s", p.log.String())
		}
	}
	resp, err := http.Post(base+"/whip/cam", "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("WHIP without the token: %d", resp.StatusCode)
	}

	pc, err := liveAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pub := &livePublisher{pc: pc}
	pub.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	pub.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{pub.video, pub.audio} {
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	pub.vpack = rtp.NewPacketizer(1200, 0, 0, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	pub.apack = rtp.NewPacketizer(1200, 0, 0, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	offer, _ := pc.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(pc)
	pc.SetLocalDescription(offer)
	<-gathered
	req, _ := http.NewRequest("POST", base+"/whip/cam", strings.NewReader(pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP with the token: %d %s", resp.StatusCode, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, pc, 10*time.Second)
	info := liveStreams(t, base)
	if len(info) != 1 || !strings.HasPrefix(info[0].Recording, "/rec/cam/") {
		t.Fatalf("streams: %+v", info)
	}
	pub.stream(context.Background(), t, video, audio)

	// SIGTERM: the server ends the stream and finishes the recording
	// before it exits.
	p.stop(t, 20*time.Second)
	pl := waitEndList(t, "http://"+c.http+strings.TrimSuffix(info[0].Recording, ".mp4")+".m3u8")
	if n := strings.Count(pl, "#EXTINF:"); n < 2 {
		t.Errorf("playlist of a 3 s stream:\n%s", pl)
	}
	d, types := probe(t, "http://"+c.http+info[0].Recording)
	if d < 2.5 || d > 3.5 || len(types) != 2 {
		t.Errorf("recording: %.2f s %v, want ~3 s of video and audio", d, types)
	}
}
