package live

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

func TestFanOut(t *testing.T) {
	s := startServer(t, nil, nil)
	pub, code, body := publishTest(t, s, "cam", "")
	if code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	waitState(t, pub.pc, 10*time.Second, webrtc.PeerConnectionStateConnected)
	const nViewers = 3
	var vs []*testViewer
	for i := 0; i < nViewers; i++ {
		v, code, body := viewTest(t, s, "cam", "")
		if code != http.StatusCreated {
			t.Fatalf("view: %d %s", code, body)
		}
		vs = append(vs, v)
	}
	for _, v := range vs {
		waitState(t, v.pc, 10*time.Second, webrtc.PeerConnectionStateConnected)
	}
	// Packets flow to a viewer only once its connection is up; send until
	// every viewer has seen one, then a measured run.
	if err := eventually(10*time.Second, func() bool {
		pub.sendFrame(t, 1)
		for _, v := range vs {
			select {
			case <-v.first:
			default:
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal("viewers received nothing")
	}
	// Joining viewers made the server ask the publisher for a keyframe
	// (held until the publisher's video track was known).
	select {
	case <-pub.plis:
	case <-time.After(5 * time.Second):
		t.Error("no PLI reached the publisher after viewers joined")
	}
	start := pub.seq + 1
	const frames, perFrame = 100, 3
	for i := 0; i < frames; i++ {
		pub.sendFrame(t, perFrame)
		time.Sleep(2 * time.Millisecond)
	}
	last := pub.seq
	for i, v := range vs {
		if err := eventually(10*time.Second, func() bool {
			r := v.received("video")
			return len(r) > 0 && r[len(r)-1] == last
		}); err != nil {
			t.Fatalf("viewer %d did not receive the last packet", i)
		}
		got := map[uint16]bool{}
		for _, sq := range v.received("video") {
			got[sq] = true
		}
		for sq := start; sq != last+1; sq++ {
			if !got[sq] {
				t.Fatalf("viewer %d missed video packet %d", i, sq)
			}
		}
		if n := len(v.received("audio")); n < frames {
			t.Errorf("viewer %d got %d audio packets, want >= %d", i, n, frames)
		}
	}
	if info := s.Streams(); len(info) != 1 || info[0].Viewers != nViewers || info[0].Name != "cam" {
		t.Errorf("Streams() = %+v", info)
	}
	// A viewer's DELETE ends only that viewer.
	last3 := vs[nViewers-1]
	if code := del(t, "http://"+s.Addr()+last3.location, ""); code != http.StatusOK {
		t.Fatalf("DELETE viewer: %d", code)
	}
	waitState(t, last3.pc, 15*time.Second, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected)
	if err := eventually(5*time.Second, func() bool { return s.Streams()[0].Viewers == nViewers-1 }); err != nil {
		t.Errorf("after a viewer's DELETE: %+v", s.Streams())
	}
	vs = vs[:nViewers-1]

	// A NACK is answered from the packet cache: the packet comes again.
	v := vs[0]
	before := len(v.received("video"))
	ssrc := uint32(v.pc.GetReceivers()[0].Track().SSRC())
	if err := v.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc,
		Nacks: []rtcp.NackPair{{PacketID: last - 5, LostPackets: 0b11}}}}); err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, func() bool { return len(v.received("video")) >= before+3 }); err != nil {
		t.Fatalf("no retransmission: %d packets before, %d after", before, len(v.received("video")))
	}
	re := v.received("video")[before:]
	if re[0] != last-5 || re[1] != last-4 || re[2] != last-3 {
		t.Errorf("retransmitted %v, want %d %d %d", re[:3], last-5, last-4, last-3)
	}

	// The publisher's DELETE ends the stream: viewers are disconnected.
	if code := del(t, "http://"+s.Addr()+pub.location, ""); code != http.StatusOK {
		t.Fatalf("DELETE publisher: %d", code)
	}
	for i, v := range vs {
		waitState(t, v.pc, 15*time.Second, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected)
		_ = i
	}
	// The name is free again: the stream comes back, a viewer resumes.
	pub2, code, body := publishTest(t, s, "cam", "")
	if code != http.StatusCreated {
		t.Fatalf("publish again: %d %s", code, body)
	}
	waitState(t, pub2.pc, 10*time.Second, webrtc.PeerConnectionStateConnected)
	v2, code, _ := viewTest(t, s, "cam", "")
	if code != http.StatusCreated {
		t.Fatalf("view again: %d", code)
	}
	if err := eventually(10*time.Second, func() bool {
		pub2.sendFrame(t, 1)
		return len(v2.received("video")) > 0
	}); err != nil {
		t.Fatal("the returning stream reached no viewer")
	}
}

// TestBadRequests: every malformed or refused request gets a clear 4xx
// and leaves no goroutine behind.
func TestBadRequests(t *testing.T) {
	const token = "s3cret"
	s := startServer(t, nil, func(c *Config) { c.Secret = token; c.SessionBurst = 30; c.SessionRate = 0.001 })
	base := "http://" + s.Addr()
	pub, code, body := publishTest(t, s, "live1", token)
	if code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	waitState(t, pub.pc, 10*time.Second, webrtc.PeerConnectionStateConnected)
	h264Offer := offerSDP("video recvonly " + h264CB)
	// Let the connected server settle, then count.
	time.Sleep(300 * time.Millisecond)
	before := runtime.NumGoroutine()

	tests := []struct {
		name, path, token, ctype, body string
		code                           int
		msg                            string
	}{
		{"malformed sdp", "/whip/x", token, "application/sdp", "v=0\r\nthis is not sdp", 400, "malformed"},
		{"empty body", "/whip/x", token, "application/sdp", "", 400, "malformed"},
		{"no usable codec", "/whip/x", token, "application/sdp", offerSDP("video sendonly "+vp9+", "+av1, "audio sendonly "+pcmu), 422, "no usable codec"},
		{"viewer codec mismatch", "/whep/live1", token, "application/sdp", offerSDP("video recvonly " + vp8c), 422, "no usable codec"},
		{"unknown stream", "/whep/nobody", token, "application/sdp", h264Offer, 404, "no such stream"},
		{"wrong token", "/whep/live1", "wrong", "application/sdp", h264Offer, 401, "bearer"},
		{"no token", "/whip/y", "", "application/sdp", h264Offer, 401, "bearer"},
		{"wrong content type", "/whip/x", token, "text/plain", h264Offer, 415, "application/sdp"},
		{"bad name", "/whip/..x", token, "application/sdp", h264Offer, 400, "stream name"},
		{"second publisher", "/whip/live1", token, "application/sdp", offerSDP("video sendonly " + h264CB), 409, "already has a publisher"},
		{"huge offer", "/whip/x", token, "application/sdp", strings.Repeat("a", 100<<10), 413, "over"},
		// Offers that negotiate but that pion refuses (no ICE credentials,
		// no DTLS fingerprint): the peer connection made for them is
		// closed again.
		{"publish offer without ice", "/whip/x", token, "application/sdp", offerSDP("video sendonly " + h264CB), 400, "malformed"},
		{"view offer without ice", "/whep/live1", token, "application/sdp", h264Offer, 400, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := post(t, base+tt.path, tt.token, tt.ctype, []byte(tt.body))
			if code != tt.code || !strings.Contains(body, tt.msg) {
				t.Errorf("POST %s: %d %q, want %d with %q", tt.path, code, body, tt.code, tt.msg)
			}
		})
	}
	// PATCH (trickle) is refused; DELETE of an unknown session is 404.
	req, _ := http.NewRequest("PATCH", base+pub.location, strings.NewReader("a=candidate"))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("PATCH: %v %v", resp.StatusCode, err)
	}
	if code := del(t, base+"/whip/live1/nope", token); code != 404 {
		t.Errorf("DELETE unknown session: %d", code)
	}
	if code := del(t, base+pub.location, "bad"); code != 401 {
		t.Errorf("DELETE with wrong token: %d", code)
	}
	// OPTIONS answers the CORS preflight.
	req, _ = http.NewRequest("OPTIONS", base+"/whip/x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("OPTIONS: %v %v", resp, err)
	}
	// A flood of creations from one client is cut off by its bucket
	// (30 tokens, and the requests above took 11 of them).
	got429 := 0
	for i := 0; i < 40; i++ {
		code, _, _ := post(t, base+"/whep/nobody", token, "application/sdp", []byte(h264Offer))
		if code == http.StatusTooManyRequests {
			got429++
		} else if code != 404 {
			t.Fatalf("flood request %d: %d", i, code)
		}
	}
	if got429 < 15 {
		t.Errorf("%d of 40 flood requests were refused with 429, want the bucket to run out", got429)
	}
	http.DefaultClient.CloseIdleConnections()
	if err := eventually(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }); err != nil {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before the bad requests, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
	}
	// The metrics count refusals by reason.
	resp, err = http.Get(base + "/-/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`reelfs_live_refused_total{reason="rate"}`, `reelfs_live_refused_total{reason="no-codec"}`, "reelfs_live_streams 1"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestSlowViewerDropped: a viewer whose queue is full is dropped at once
// (the reader never waits for it) and counted; the stream goes on.
func TestSlowViewerDropped(t *testing.T) {
	s := startServer(t, nil, func(c *Config) { c.ViewerQueue = 16 })
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{s: s, name: "cam", log: s.log, done: make(chan struct{})}
	st.viewers.Store(&[]*viewer{})
	tr, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "x")
	slow := &viewer{s: s, st: st, id: "slow", pc: pc, q: make(chan packetItem, 16), done: make(chan struct{}), log: s.log}
	slow.tracks[kindVideo] = tr
	s.mu.Lock()
	s.sessions["slow"] = slow
	s.mu.Unlock()
	if !st.addViewer(slow) || !slow.goLive() {
		t.Fatal("could not add the viewer")
	}
	// Nobody drains its queue: the 17th packet finds it full.
	for i := 0; i < 17; i++ {
		for _, v := range *st.viewers.Load() {
			v.send(kindVideo, pkt(uint16(i)))
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("the slow viewer was not dropped")
	}
	if n := len(*st.viewers.Load()); n != 0 {
		t.Errorf("%d viewers left on the stream", n)
	}
	if err := eventually(5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sessions["slow"] == nil
	}); err != nil {
		t.Error("the slow viewer's session was not released")
	}
	resp, err := http.Get("http://" + s.Addr() + "/-/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	io.Copy(b, resp.Body)
	for _, want := range []string{`reelfs_live_viewers_dropped_total{reason="slow"} 1`, "reelfs_live_viewers 0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"bad listen", func(c *Config) { c.Listen = "nope" }, false},
		{"bad media", func(c *Config) { c.MediaListen = "x:y:z" }, false},
		{"bad public ip", func(c *Config) { c.PublicIPs = []string{"host.example"} }, false},
		{"relative record dir", func(c *Config) { c.RecordDir = "live" }, false},
		{"no recording", func(c *Config) { c.RecordDir = "" }, true},
		{"max below target", func(c *Config) { c.FragmentMax = c.FragmentTarget / 2 }, false},
		{"tiny fragments", func(c *Config) { c.FragmentTarget = time.Millisecond }, false},
		{"tiny queue", func(c *Config) { c.ViewerQueue = 1 }, false},
		{"huge cache", func(c *Config) { c.PacketCache = 1 << 20 }, false},
		{"no sessions", func(c *Config) { c.MaxSessions = 0 }, false},
		{"no rate", func(c *Config) { c.SessionRate = 0 }, false},
		{"nil logger", func(c *Config) { c.Logger = nil }, false},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mod(&c)
		err := c.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v is not ErrConfig", tt.name, err)
		}
	}
}
