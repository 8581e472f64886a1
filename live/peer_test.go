package live

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// testLogger logs to the test at -v, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("LIVE_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a server on loopback ports until the test ends.
func startServer(t testing.TB, fs FS, mod func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen, cfg.MediaListen, cfg.Logger = "127.0.0.1:0", "127.0.0.1:0", testLogger(t)
	cfg.ConnectTimeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return 20s after its context ended")
		}
	})
	return s
}

// loopbackAPI is a pion API whose candidates are 127.0.0.1 only.
func loopbackAPI(t testing.TB) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	// A retransmission repeats a sequence number the test viewer already
	// has (nothing is lost on loopback); SRTP replay protection would
	// drop it.
	se.DisableSRTPReplayProtection(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
}

// post sends an SDP offer and returns the status, body and Location.
func post(t testing.TB, url, token, ctype string, body []byte) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// connect offers pc's description to url and applies the answer.
func connect(t testing.TB, pc *webrtc.PeerConnection, url, token string) (int, string, string) {
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
	code, body, loc := post(t, url, token, "application/sdp", []byte(pc.LocalDescription().SDP))
	if code == http.StatusCreated {
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
			t.Fatal(err)
		}
	}
	return code, body, loc
}

// waitState waits until pc reaches one of states.
func waitState(t testing.TB, pc *webrtc.PeerConnection, timeout time.Duration, states ...webrtc.PeerConnectionState) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range states {
			if pc.ConnectionState() == s {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("peer connection is %s after %v, want %v", pc.ConnectionState(), timeout, states)
}

// testPublisher is a pion WHIP publisher of raw RTP.
type testPublisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	location     string
	plis         chan struct{}
	seq          uint16
	ts           uint32
}

func publishTest(t testing.TB, s *Server, name, token string) (*testPublisher, int, string) {
	t.Helper()
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	p := &testPublisher{pc: pc, plis: make(chan struct{}, 100)}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		snd, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				pkts, _, err := snd.Sender().ReadRTCP()
				if err != nil {
					return
				}
				for _, pk := range pkts {
					if _, ok := pk.(*rtcp.PictureLossIndication); ok {
						select {
						case p.plis <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	code, body, loc := connect(t, pc, "http://"+s.Addr()+"/whip/"+name, token)
	p.location = loc
	return p, code, body
}

// sendFrame sends one video frame as n packets (the last with the
// marker bit) and one audio packet.
func (p *testPublisher) sendFrame(t testing.TB, n int) {
	for i := 0; i < n; i++ {
		p.seq++
		pk := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: p.seq, Timestamp: p.ts, Marker: i == n-1},
			Payload: []byte{0x41, byte(p.seq), byte(p.seq >> 8), 1, 2, 3}}
		if err := p.video.WriteRTP(pk); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: p.seq, Timestamp: p.ts / 90 * 48},
		Payload: []byte{0xfc, 1, 2, 3}})
	p.ts += 3000
}

// testViewer is a pion WHEP viewer that records the sequence numbers it
// receives per kind.
type testViewer struct {
	pc       *webrtc.PeerConnection
	location string
	mu       sync.Mutex
	seqs     map[string][]uint16
	first    chan struct{}
	once     sync.Once
}

func viewTest(t testing.TB, s *Server, name, token string) (*testViewer, int, string) {
	t.Helper()
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	v := &testViewer{pc: pc, seqs: map[string][]uint16{}, first: make(chan struct{})}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pk, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			v.seqs[tr.Kind().String()] = append(v.seqs[tr.Kind().String()], pk.SequenceNumber)
			v.mu.Unlock()
			v.once.Do(func() { close(v.first) })
		}
	})
	code, body, loc := connect(t, pc, "http://"+s.Addr()+"/whep/"+name, token)
	v.location = loc
	return v, code, body
}

func (v *testViewer) received(kind string) []uint16 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]uint16(nil), v.seqs[kind]...)
}

func del(t testing.TB, url, token string) int {
	req, _ := http.NewRequest("DELETE", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var errTimeout = errors.New("timeout")

// eventually polls cond every 20ms for at most d.
func eventually(d time.Duration, cond func() bool) error {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return nil
		}
	}
	if cond() {
		return nil
	}
	return errTimeout
}
