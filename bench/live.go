package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// The live section measures the SFU's fan-out: one publisher at about
// 2 Mbit/s (30 fps video in 1200-byte packets, plus 50 audio packets a
// second) to N WHEP viewers, all pion peers in this process, on loopback.
// The server (`reelfs live`, no recording) runs as its own process so its
// CPU time is its own: CPU per viewer is the slope of server CPU between
// the smallest and the largest N, and the viewers one core carries are
// extrapolated from it. Latency is from the publisher's WriteRTP to the
// viewer's ReadRTP of the same video packet (one clock: same process).

const (
	liveVideoRate = 2_000_000 // bit/s
	liveFPS       = 30
	livePayload   = 1200
)

// liveStage is one measured viewer count.
type liveStage struct {
	viewers  int
	cpu      float64 // server CPU seconds per second
	sent     int     // video packets sent in the window
	lossPct  float64 // worst viewer's loss of video packets
	p50, p99 time.Duration
	err      error
}

func (r *runner) liveSection(ctx context.Context) *table {
	t := &table{title: "Live: WebRTC fan-out, one 2 Mbit/s publisher to N pion viewers on loopback"}
	counts, window := []int{10, 50, 100}, 10*time.Second
	if r.opt.quick {
		counts, window = []int{2, 5}, 3*time.Second
	}
	var stages []liveStage
	for _, n := range counts {
		if ctx.Err() != nil {
			break
		}
		st := r.liveStage(ctx, n, window)
		r.log.Info("live stage", "viewers", n, "cpu", st.cpu, "loss%", st.lossPct, "p50", st.p50, "p99", st.p99, "err", st.err)
		stages = append(stages, st)
	}
	var okStages []liveStage
	for _, s := range stages {
		if s.err == nil {
			okStages = append(okStages, s)
		} else {
			t.note("%d viewers: %v", s.viewers, s.err)
		}
	}
	if len(okStages) < 2 {
		t.notRun = "fewer than two viewer counts measured"
		return t
	}
	lo, hi := okStages[0], okStages[len(okStages)-1]
	perViewer := (hi.cpu - lo.cpu) / float64(hi.viewers-lo.viewers)
	for _, s := range okStages {
		t.add(row{name: fmt.Sprintf("%d viewers: server CPU", s.viewers), reelfs: got(s.cpu*100, "% of a core")})
		t.add(row{name: fmt.Sprintf("%d viewers: worst viewer's video loss", s.viewers), reelfs: got(s.lossPct, "%")})
		t.add(row{name: fmt.Sprintf("%d viewers: latency p50", s.viewers), reelfs: got(float64(s.p50.Microseconds())/1000, "ms")})
		t.add(row{name: fmt.Sprintf("%d viewers: latency p99", s.viewers), reelfs: got(float64(s.p99.Microseconds())/1000, "ms")})
	}
	if perViewer > 0 {
		t.add(row{name: "server CPU per viewer (slope)", reelfs: got(perViewer*1000, "ms CPU/s")})
		t.add(row{name: "viewers one core carries (1 / CPU per viewer)", reelfs: got(1/perViewer, "viewers"), goal: absAtLeast(300, "viewers")})
	} else {
		t.note("server CPU did not grow with viewers (%.3f -> %.3f cores): no slope", lo.cpu, hi.cpu)
	}
	t.add(row{name: fmt.Sprintf("latency p99 at %d viewers", hi.viewers), reelfs: got(float64(hi.p99.Microseconds())/1000, "ms"),
		goal: &target{atMost: true, factor: 150, abs: true, unit: "ms"}})
	t.note("viewers and publisher are pion peers in the bench process, on the same %d cores as the server: their SRTP decryption competes with it, so latency is an upper bound", nCPU())
	t.note("loss is counted over unique video sequence numbers, after the window plus 1 s to drain; the bench viewers do not NACK, so it is the loss before any repair")
	t.note("anchors: mediasoup ~500 consumers (~250 audio+video viewers) per core; LiveKit 3,000 viewers on 16 cores")
	return t
}

func nCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "processor\t:"))
}

// procCPU returns the CPU seconds (user+system) process pid has used.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// liveStage starts a fresh server, connects a publisher and n viewers,
// streams for window and measures.
func (r *runner) liveStage(ctx context.Context, n int, window time.Duration) liveStage {
	out := liveStage{viewers: n}
	addrs, err := freeAddrs(1)
	if err != nil {
		out.err = err
		return out
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		out.err = err
		return out
	}
	media := udp.LocalAddr().String()
	udp.Close()
	logPath := filepath.Join(r.dir, fmt.Sprintf("live-%d.log", n))
	p, err := startChild("reelfs live", logPath, "", nil, r.bin, "live", "--listen", addrs[0], "--media", media,
		"--record-dir=", "--log-level", "warn", "--session-burst", strconv.Itoa(n+10))
	if err != nil {
		out.err = err
		return out
	}
	defer p.stop(30 * time.Second)
	if err := waitListening(ctx, addrs[0], 30*time.Second, p); err != nil {
		out.err = err
		return out
	}
	base := "http://" + addrs[0]
	api, err := benchAPI()
	if err != nil {
		out.err = err
		return out
	}
	pub, err := newBenchPublisher(api, base+"/whip/bench")
	if err != nil {
		out.err = fmt.Errorf("publisher: %w", err)
		return out
	}
	defer pub.pc.Close()
	viewers := make([]*benchViewer, n)
	for i := range viewers {
		if viewers[i], err = newBenchViewer(api, base+"/whep/bench", pub); err != nil {
			out.err = fmt.Errorf("viewer %d: %w", i, err)
			return out
		}
		defer viewers[i].pc.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range append([]*webrtc.PeerConnection{pub.pc}, pcs(viewers)...) {
		for v.ConnectionState() != webrtc.PeerConnectionStateConnected {
			if time.Now().After(deadline) {
				out.err = fmt.Errorf("peers not connected after 30 s")
				return out
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // the server's side of each connection is up too
	pub.start()
	defer pub.stop()
	time.Sleep(time.Second) // warm up
	first := pub.seq.Load() + 1
	c0, _ := procCPU(p.cmd.Process.Pid)
	t0 := time.Now()
	for _, v := range viewers {
		v.measure(first)
	}
	select {
	case <-ctx.Done():
		out.err = ctx.Err()
		return out
	case <-time.After(window):
	}
	c1, err := procCPU(p.cmd.Process.Pid)
	if err != nil {
		out.err = err
		return out
	}
	out.cpu = (c1 - c0) / time.Since(t0).Seconds()
	last := pub.seq.Load()
	out.sent = int(last - first + 1)
	time.Sleep(time.Second) // late packets and retransmissions arrive
	var lat []time.Duration
	for _, v := range viewers {
		got, l := v.result(first, last)
		if loss := 100 * float64(out.sent-got) / float64(out.sent); loss > out.lossPct {
			out.lossPct = loss
		}
		lat = append(lat, l...)
	}
	if len(lat) == 0 {
		out.err = fmt.Errorf("no packet reached a viewer")
		return out
	}
	slices.Sort(lat)
	out.p50, out.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return out
}

func pcs(vs []*benchViewer) []*webrtc.PeerConnection {
	out := make([]*webrtc.PeerConnection, len(vs))
	for i, v := range vs {
		out[i] = v.pc
	}
	return out
}

func benchAPI() (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)), nil
}

// whep posts pc's complete offer and applies the answer.
func whep(pc *webrtc.PeerConnection, url string) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	resp, err := http.Post(url, "application/sdp", strings.NewReader(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, body)
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(body)})
}

// benchPublisher sends synthetic H.264-shaped packets at liveVideoRate
// (the SFU does not decode them) and Opus-sized audio packets.
type benchPublisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticRTP
	seq          atomic.Uint32 // last video sequence number sent (unwrapped)
	sentAt       sync.Map      // uint16 sequence number -> time.Time
	done         chan struct{}
	wg           sync.WaitGroup
}

func newBenchPublisher(api *webrtc.API, url string) (*benchPublisher, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &benchPublisher{pc: pc, done: make(chan struct{})}
	p.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "bench")
	p.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "bench")
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			pc.Close()
			return nil, err
		}
		go func() {
			for {
				if _, _, err := tc.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	if err := whep(pc, url); err != nil {
		pc.Close()
		return nil, err
	}
	return p, nil
}

func (p *benchPublisher) start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		perFrame := liveVideoRate / 8 / liveFPS / livePayload
		payload := make([]byte, livePayload)
		payload[0] = 0x7c // FU-A, so a depacketizer would accept it
		tick := time.NewTicker(time.Second / liveFPS)
		defer tick.Stop()
		audio := time.NewTicker(20 * time.Millisecond) // Opus: 50 packets a second
		defer audio.Stop()
		var ts uint32
		var aseq uint16
		for {
			select {
			case <-p.done:
				return
			case <-audio.C:
				aseq++
				_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: uint32(aseq) * 960},
					Payload: payload[:120]})
				continue
			case <-tick.C:
			}
			for i := 0; i < perFrame; i++ {
				seq := p.seq.Add(1)
				p.sentAt.Store(uint16(seq), time.Now())
				_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(seq), Timestamp: ts,
					Marker: i == perFrame-1}, Payload: payload})
			}
			ts += 90000 / liveFPS
		}
	}()
}

func (p *benchPublisher) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}

// benchViewer counts the video packets it receives in the measured
// window and their latency.
type benchViewer struct {
	pc   *webrtc.PeerConnection
	pub  *benchPublisher
	mu   sync.Mutex
	from uint16
	on   bool
	seen map[uint16]bool
	lat  []time.Duration
}

func newBenchViewer(api *webrtc.API, url string, pub *benchPublisher) (*benchViewer, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &benchViewer{pc: pc, pub: pub, seen: map[uint16]bool{}}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		var pk rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if tr.Kind() != webrtc.RTPCodecTypeVideo || pk.Unmarshal(buf[:n]) != nil {
				continue
			}
			now := time.Now()
			v.mu.Lock()
			if v.on && !v.seen[pk.SequenceNumber] {
				v.seen[pk.SequenceNumber] = true
				if at, ok := pub.sentAt.Load(pk.SequenceNumber); ok {
					v.lat = append(v.lat, now.Sub(at.(time.Time)))
				}
			}
			v.mu.Unlock()
		}
	})
	if err := whep(pc, url); err != nil {
		pc.Close()
		return nil, err
	}
	return v, nil
}

func (v *benchViewer) measure(from uint32) {
	v.mu.Lock()
	v.on, v.from = true, uint16(from)
	v.mu.Unlock()
}

// result returns how many of the packets first..last arrived, and the
// latencies seen.
func (v *benchViewer) result(first, last uint32) (int, []time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	got := 0
	for s := first; s <= last; s++ {
		if v.seen[uint16(s)] {
			got++
		}
	}
	return got, append([]time.Duration(nil), v.lat...)
}
