package live

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/reelfs/reelfs/consul"
)

// Server is a WebRTC SFU: WHIP publishers, WHEP viewers, recordings into
// the filesystem. Create it with New, serve with Run.
type Server struct {
	cfg  Config
	svc  consul.Service // how Run registers in Consul, with Config.Consul
	log  *slog.Logger
	fs   FS // nil: no recording
	ln   net.Listener
	udp  net.PacketConn
	mux  ice.UDPMux
	se   webrtc.SettingEngine
	reg  *prometheus.Registry
	m    *metrics
	http *http.Server

	mu       sync.Mutex // guards the fields below
	closed   bool
	streams  map[string]*stream
	sessions map[string]session // by id, for DELETE
	limiters map[string]*clientLimit

	wg sync.WaitGroup // every goroutine a session starts; Run waits for them
}

// session is a publisher or a viewer, as the HTTP layer sees it.
type session interface {
	streamName() string
	// end stops the session; it does not wait and may be called again.
	end(reason string)
}

type clientLimit struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxLimiters bounds the per-client limiter table; past it, entries idle
// longest are evicted (a client that was idle that long has a full bucket
// anyway).
const maxLimiters = 10000

// New validates cfg, binds the HTTP and UDP ports and returns a server
// that Run serves. fs is where recordings go; nil records nothing.
func New(cfg Config, fs FS) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("live: listen %s: %w", cfg.Listen, err)
	}
	udpAddr, _ := net.ResolveUDPAddr("udp", cfg.MediaListen)
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("live: listen udp %s: %w", cfg.MediaListen, err)
	}
	// Larger socket buffers: every session shares this one socket.
	_ = udp.SetReadBuffer(8 << 20)
	_ = udp.SetWriteBuffer(8 << 20)
	logs := pionLogs{cfg.Logger}
	s := &Server{
		cfg: cfg, log: cfg.Logger, fs: fs, ln: ln, udp: udp,
		mux:      webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), udp),
		reg:      prometheus.NewRegistry(),
		streams:  map[string]*stream{},
		sessions: map[string]session{},
		limiters: map[string]*clientLimit{},
	}
	if cfg.RecordDir == "" {
		s.fs = nil
	}
	s.m = newMetrics(s.reg)
	s.se.LoggerFactory = logs
	s.se.SetICEUDPMux(s.mux)
	s.se.SetIncludeLoopbackCandidate(true)
	s.se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	s.se.SetICETimeouts(cfg.DisconnectTimeout/2, cfg.DisconnectTimeout, time.Second)
	if ip := udpAddr.IP; ip != nil && !ip.IsUnspecified() {
		// Offer only the address the socket is bound to (tests: loopback).
		s.se.SetIPFilter(func(c net.IP) bool { return c.Equal(ip) })
	}
	if len(cfg.PublicIPs) > 0 {
		s.se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	// Requests are small (an offer of at most MaxOfferBytes) and answers
	// are made in well under a second; the timeouts bound what a client
	// that trickles its request or stops reading can hold.
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)}
	if cfg.Consul != nil {
		if s.svc, err = consul.HTTPService(consul.ServiceLive, s.Addr(), "/-/healthy"); err != nil {
			s.mux.Close()
			udp.Close()
			ln.Close()
			return nil, fmt.Errorf("live: %w", err)
		}
	}
	return s, nil
}

// Addr is the HTTP address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// MediaAddr is the UDP address that carries all media.
func (s *Server) MediaAddr() string { return s.udp.LocalAddr().String() }

// Registry is the server's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Run serves until ctx ends, then ends every session (viewers are
// disconnected, recordings finished) and returns once all its goroutines
// have stopped.
func (s *Server) Run(ctx context.Context) error {
	// The Consul registration lives from here until the HTTP server has
	// shut down; it deregisters first thing on the way out.
	regCtx, stopReg := context.WithCancel(ctx)
	regDone := make(chan struct{})
	if s.cfg.Consul != nil {
		go func() {
			defer close(regDone)
			s.cfg.Consul.Register(regCtx, s.svc)
		}()
	} else {
		close(regDone)
	}
	defer func() {
		stopReg()
		<-regDone
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopReg()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = s.http.Shutdown(sctx)
	cancel()
	if err == nil {
		if e := <-errc; !errors.Is(e, http.ErrServerClosed) {
			err = e
		}
	}
	s.mu.Lock()
	s.closed = true
	all := make([]session, 0, len(s.sessions))
	for _, x := range s.sessions {
		all = append(all, x)
	}
	s.mu.Unlock()
	for _, x := range all {
		x.end("server-shutdown")
	}
	s.wg.Wait()
	s.mux.Close()
	s.udp.Close()
	return err
}

// goFunc runs fn in a goroutine Run waits for. It reports false (and does
// not run fn) once the server is shutting down and all sessions have been
// told to end.
func (s *Server) goFunc(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && len(s.sessions) == 0 {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// newAPI builds the pion API of one peer connection: a media engine that
// knows only the negotiated codecs, and the interceptors of its role.
// Publishers: NACK generator (asks the publisher again for lost
// packets), receiver reports, TWCC feedback. Viewers: sender reports;
// their NACKs are answered from the shared packet cache (serve.go), not
// by pion's per-sender responder, which would copy every packet per
// viewer.
func (s *Server) newAPI(o Offer, publisher bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	for _, c := range []*Codec{o.Video, o.Audio} {
		if c == nil {
			continue
		}
		p := webrtc.RTPCodecParameters{RTPCodecCapability: c.capability(publisher), PayloadType: webrtc.PayloadType(c.PayloadType)}
		if err := me.RegisterCodec(p, c.Kind); err != nil {
			return nil, err
		}
	}
	reg := &interceptor.Registry{}
	if publisher {
		gen, err := nack.NewGeneratorInterceptor()
		if err != nil {
			return nil, err
		}
		reg.Add(gen)
		rr, err := report.NewReceiverInterceptor()
		if err != nil {
			return nil, err
		}
		reg.Add(rr)
		if err := webrtc.ConfigureTWCCSender(me, reg); err != nil {
			return nil, err
		}
	} else {
		sr, err := report.NewSenderInterceptor()
		if err != nil {
			return nil, err
		}
		reg.Add(sr)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(s.se), webrtc.WithInterceptorRegistry(reg)), nil
}

// answer applies offer to pc and returns the complete answer (all
// candidates included: the server does not trickle).
func answer(ctx context.Context, pc *webrtc.PeerConnection, offer []byte) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCodec, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// reserve registers a new session, refusing past MaxSessions.
func (s *Server) reserve(id string, x session) error {
	if s.closed {
		return ErrClosed
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		return ErrFull
	}
	s.sessions[id] = x
	return nil
}

// release forgets a session that has ended.
func (s *Server) release(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// allow takes a session-creation token of the client at ip.
func (s *Server) allow(ip string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.limiters[ip]
	if cl == nil {
		if len(s.limiters) >= maxLimiters {
			var oldest string
			for k, v := range s.limiters {
				if oldest == "" || v.seen.Before(s.limiters[oldest].seen) {
					oldest = k
				}
			}
			delete(s.limiters, oldest)
		}
		cl = &clientLimit{lim: rate.NewLimiter(rate.Limit(s.cfg.SessionRate), s.cfg.SessionBurst)}
		s.limiters[ip] = cl
	}
	cl.seen = now
	return cl.lim.AllowN(now, 1)
}

var streamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Handler returns the HTTP routes: WHIP, WHEP, pages, metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{stream}", s.handlePublish)
	mux.HandleFunc("POST /whep/{stream}", s.handleView)
	mux.HandleFunc("POST /whep/vod/{path...}", s.handleVOD)
	mux.HandleFunc("DELETE /whip/{stream}/{id}", s.handleDelete)
	mux.HandleFunc("DELETE /whep/{stream}/{id}", s.handleDelete)
	mux.HandleFunc("PATCH /whip/{stream}/{id}", s.handlePatch)
	mux.HandleFunc("PATCH /whep/{stream}/{id}", s.handlePatch)
	mux.HandleFunc("OPTIONS /", s.handleOptions)
	mux.HandleFunc("GET /live/{$}", s.handleList)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/live/", http.StatusFound) })
	mux.HandleFunc("GET /live/{stream}", s.handlePage)
	mux.HandleFunc("GET /api/streams", s.handleStreams)
	mux.Handle("GET /-/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	return s.cors(mux)
}

func (s *Server) cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AllowOrigin != "" {
			w.Header().Set("Access-Control-Allow-Origin", s.cfg.AllowOrigin)
			w.Header().Set("Access-Control-Expose-Headers", "Location, Link, Accept-Patch")
		}
		h.ServeHTTP(w, r)
	})
}

// handleOptions answers CORS preflights (RFC 9725 §4.1 allows OPTIONS on
// the endpoint for them).
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// fail writes a plain-text error with its status and counts it.
func (s *Server) fail(w http.ResponseWriter, code int, reason, msg string) {
	s.m.refused.WithLabelValues(reason).Inc()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// failErr maps a session error to its status.
func (s *Server) failErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadOffer):
		s.fail(w, http.StatusBadRequest, "bad-offer", err.Error())
	case errors.Is(err, ErrBadMedia):
		s.fail(w, http.StatusUnprocessableEntity, "bad-media", err.Error())
	case errors.Is(err, ErrNoCodec):
		s.fail(w, http.StatusUnprocessableEntity, "no-codec", err.Error())
	case errors.Is(err, ErrNoStream):
		s.fail(w, http.StatusNotFound, "no-stream", err.Error())
	case errors.Is(err, ErrStreamBusy):
		s.fail(w, http.StatusConflict, "busy", err.Error())
	case errors.Is(err, ErrFull), errors.Is(err, ErrClosed):
		w.Header().Set("Retry-After", "5")
		s.fail(w, http.StatusServiceUnavailable, "full", err.Error())
	default:
		s.log.Warn("session failed", "err", err)
		s.fail(w, http.StatusInternalServerError, "error", err.Error())
	}
}

// authorized checks the bearer token when a secret is set.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Secret == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Secret)) == 1
}

// admit runs the checks every session creation shares, cheapest first,
// and returns the offer; on false it has answered. Live sessions name a
// stream; playback (named) does not.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, named bool) ([]byte, bool) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="reelfs live"`)
		s.fail(w, http.StatusUnauthorized, "auth", "live: missing or wrong bearer token")
		return nil, false
	}
	if named && !streamName.MatchString(r.PathValue("stream")) {
		s.fail(w, http.StatusBadRequest, "bad-name", "live: a stream name is 1-64 of A-Z a-z 0-9 _ . - (not starting with . _ -)")
		return nil, false
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if !s.allow(ip, time.Now()) {
		w.Header().Set("Retry-After", "1")
		s.fail(w, http.StatusTooManyRequests, "rate", "live: too many sessions created from "+ip)
		return nil, false
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/sdp") {
		s.fail(w, http.StatusUnsupportedMediaType, "content-type", "live: the body must be an SDP offer (Content-Type: application/sdp)")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxOfferBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("live: offer over %d bytes", s.cfg.MaxOfferBytes))
		} else {
			s.fail(w, http.StatusBadRequest, "bad-offer", "live: reading offer: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

// created answers 201 with the SDP answer and the session's Location.
func created(w http.ResponseWriter, location, sdp string) {
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", location)
	h.Set("ETag", `"`+strings.TrimPrefix(location[strings.LastIndexByte(location, '/'):], "/")+`"`)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, sdp)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	offer, ok := s.admit(w, r, true)
	if !ok {
		return
	}
	name := r.PathValue("stream")
	id, sdp, err := s.publish(r.Context(), name, offer)
	if err != nil {
		s.failErr(w, err)
		return
	}
	created(w, "/whip/"+name+"/"+id, sdp)
}

func (s *Server) handleView(w http.ResponseWriter, r *http.Request) {
	offer, ok := s.admit(w, r, true)
	if !ok {
		return
	}
	name := r.PathValue("stream")
	id, sdp, err := s.view(r.Context(), name, offer)
	if err != nil {
		s.failErr(w, err)
		return
	}
	created(w, "/whep/"+name+"/"+id, sdp)
}

// handleDelete ends a session (RFC 9725 §4.2): a publisher's DELETE ends
// its stream.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="reelfs live"`)
		s.fail(w, http.StatusUnauthorized, "auth", "live: missing or wrong bearer token")
		return
	}
	s.mu.Lock()
	x := s.sessions[r.PathValue("id")]
	s.mu.Unlock()
	if x == nil || x.streamName() != r.PathValue("stream") {
		s.fail(w, http.StatusNotFound, "no-session", "live: no such session")
		return
	}
	x.end("deleted")
	w.WriteHeader(http.StatusOK)
}

// handlePatch refuses trickle ICE and ICE restarts: the answer carries
// every server candidate (one host address on one UDP port) and clients
// send their offer after gathering, as RFC 9725 §4.3.1 lets a server
// choose; 405 tells them to do so.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "DELETE, OPTIONS")
	s.fail(w, http.StatusMethodNotAllowed, "patch", "live: trickle ICE is not supported; send an offer with all candidates")
}
