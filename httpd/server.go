package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/internal/wire"
)

// CORS and method lists.
const (
	allowMethods  = "GET, HEAD, PUT, DELETE, OPTIONS"
	allowHeaders  = "Range, If-Range, If-None-Match, If-Match, If-Modified-Since, If-Unmodified-Since, Authorization, Content-Type"
	exposeHeaders = "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Content-Disposition"
)

// Server states.
const (
	stateIdle = iota
	stateRunning
	stateClosed
)

// Server is the public streaming server. New binds its listener; Run
// serves until its context ends or Close is called.
type Server struct {
	cfg     Config
	fs      FileSystem
	log     *slog.Logger
	ln      net.Listener
	srv     *fasthttp.Server
	svc     consul.Service // how Run registers in Consul, with Config.Consul
	metrics *metrics
	promh   fasthttp.RequestHandler
	pages   *pages

	// base is the parent of every request's and stream's context; stop
	// cancels it when a shutdown's grace period is over (or on Close
	// without Run), aborting transfers still in flight.
	base context.Context
	stop context.CancelFunc

	// streams counts fetcher goroutines; Run waits for them.
	streams sync.WaitGroup
	// bufs holds read pieces of cfg.pieceSize() bytes.
	bufs sync.Pool

	// connMu guards conns (open client connections, kept by the ConnState
	// hook) and drained (closed when conns reaches 0 during shutdown).
	connMu  sync.Mutex
	conns   int
	drained chan struct{}

	// mu guards state; closed is closed by Close, runDone when Run returns.
	mu      sync.Mutex
	state   int
	closed  chan struct{}
	runDone chan struct{}
}

// New validates cfg and binds the listener; Run serves on it.
func New(cfg Config, fs FileSystem) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fs == nil {
		return nil, fmt.Errorf("%w: nil FileSystem", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pg, err := newPages()
	if err != nil {
		return nil, fmt.Errorf("httpd: templates: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("httpd: listen %s: %w", cfg.Listen, err)
	}
	reg := prometheus.NewRegistry()
	base, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, fs: fs, log: log.With("component", "httpd"), ln: ln,
		metrics: newMetrics(reg),
		promh:   fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})),
		pages:   pg,
		base:    base, stop: stop,
		closed: make(chan struct{}), runDone: make(chan struct{}),
	}
	s.srv = &fasthttp.Server{
		Handler:           s.handle,
		ExpectHandler:     s.expect,
		Name:              "reelfs",
		StreamRequestBody: true,
		// Small bodies arrive whole; longer uploads stream.
		MaxRequestBodySize:           cfg.MaxRequestBody,
		Concurrency:                  cfg.Concurrency,
		MaxConnsPerIP:                cfg.MaxConnsPerIP,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  cfg.HeaderTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		CloseOnShutdown:              true,
		NoDefaultContentType:         true,
		ConnState:                    s.connState,
		Logger:                       fasthttpLogger{s.log},
	}
	if cfg.Consul != nil {
		if s.svc, err = consul.HTTPService(consul.ServiceHTTPD, s.Addr(), "/-/health"); err != nil {
			ln.Close()
			stop()
			return nil, fmt.Errorf("httpd: %w", err)
		}
	}
	return s, nil
}

// Addr is the bound listener address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends or Close is called, then shuts down: it stops
// accepting, lets responses in flight finish for ShutdownTimeout, aborts
// the rest, and returns once every connection and stream goroutine ended.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateIdle {
		s.mu.Unlock()
		return ErrRunning
	}
	s.state = stateRunning
	s.mu.Unlock()
	defer close(s.runDone)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.srv.Serve(s.ln); err != nil && gctx.Err() == nil {
			return fmt.Errorf("httpd: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-s.closed:
		}
		s.shutdown()
		return nil
	})
	if s.cfg.Consul != nil {
		// Deregister when Run's context ends or Close is called.
		rctx, cancel := context.WithCancel(gctx)
		g.Go(func() error {
			select {
			case <-rctx.Done():
			case <-s.closed:
			}
			cancel()
			return nil
		})
		g.Go(func() error { return s.cfg.Consul.Register(rctx, s.svc) })
	}
	s.log.Info("serving", "addr", s.Addr(), "signed_reads", s.cfg.signing())
	return g.Wait()
}

// shutdown stops the listener, waits ShutdownTimeout for responses in
// flight, then aborts the rest and waits for their connections to end.
func (s *Server) shutdown() {
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	err := s.srv.ShutdownWithContext(sctx)
	cancel()
	// Shutdown only closes listeners Serve has registered; when Run's
	// context ended before Serve got that far, closing the listener here
	// makes that late Serve return instead of accepting forever.
	s.ln.Close()
	s.stop()
	if err != nil {
		s.log.Warn("shutdown: aborting transfers still in flight", "err", err)
		if !s.waitConns(s.cfg.ShutdownTimeout) {
			s.log.Error("shutdown: connections still open after abort")
		}
	}
	s.streams.Wait()
}

// Close shuts the server down (as the end of Run's context does) and
// waits for Run to return; without Run it releases the listener.
func (s *Server) Close() error {
	s.mu.Lock()
	st := s.state
	if st != stateClosed {
		s.state = stateClosed
		close(s.closed)
	}
	s.mu.Unlock()
	switch st {
	case stateIdle:
		s.stop()
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("httpd: close listener: %w", err)
		}
	case stateRunning:
		<-s.runDone
	}
	return nil
}

// connState counts open client connections for shutdown.
func (s *Server) connState(_ net.Conn, st fasthttp.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch st {
	case fasthttp.StateNew:
		s.conns++
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		s.conns--
		if s.conns == 0 && s.drained != nil {
			close(s.drained)
			s.drained = nil
		}
	}
}

// waitConns waits up to d for every client connection to close.
func (s *Server) waitConns(d time.Duration) bool {
	s.connMu.Lock()
	if s.conns == 0 {
		s.connMu.Unlock()
		return true
	}
	ch := make(chan struct{})
	s.drained = ch
	s.connMu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func (s *Server) getBuf(n int) *[]byte {
	if p, ok := s.bufs.Get().(*[]byte); ok && cap(*p) >= n {
		return p
	}
	b := make([]byte, n)
	return &b
}

func (s *Server) putBuf(p *[]byte) {
	if p != nil {
		s.bufs.Put(p)
	}
}

// exchange is one request being answered. Its strings are copies: a
// streamed response finishes after fasthttp has reused the RequestCtx.
type exchange struct {
	s        *Server
	ctx      *fasthttp.RequestCtx
	rctx     context.Context // for filesystem calls; ends with the handler
	start    time.Time
	method   string
	path     string // raw request path, for the access log
	rng      string // Range header, for the access log
	remote   string
	streamed bool // the stream's Close finishes the exchange
}

// handle is the fasthttp handler: CORS, method dispatch, and the request's
// metrics and access log line.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	// Every response must be taken by the client within StallTimeout;
	// streams push this deadline forward with each piece.
	_ = ctx.SetWriteDeadline(start.Add(s.cfg.StallTimeout))
	rctx, cancel := context.WithCancel(s.base)
	defer cancel()
	x := &exchange{
		s: s, ctx: ctx, rctx: rctx, start: start,
		method: string(ctx.Method()),
		path:   string(ctx.URI().PathOriginal()),
		rng:    string(ctx.Request.Header.Peek("Range")),
		remote: ctx.RemoteAddr().String(),
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", "method", x.method, "path", x.path, "panic", r, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			s.fail(x, fasthttp.StatusInternalServerError, "internal error")
		}
		if !x.streamed {
			n := int64(len(ctx.Response.Body()))
			if x.method == fasthttp.MethodHead {
				n = 0
			}
			s.metrics.bytesSent.Add(float64(n))
			x.finish(ctx.Response.StatusCode(), n, nil)
		}
	}()

	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", exposeHeaders)
	switch x.method {
	case fasthttp.MethodGet, fasthttp.MethodHead:
		s.serveRead(x)
	case fasthttp.MethodPut:
		s.servePut(x)
	case fasthttp.MethodDelete:
		s.serveDelete(x)
	case fasthttp.MethodOptions:
		h.Set("Allow", allowMethods)
		h.Set("Access-Control-Allow-Methods", allowMethods)
		h.Set("Access-Control-Allow-Headers", allowHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	default:
		h.Set("Allow", allowMethods)
		s.fail(x, fasthttp.StatusMethodNotAllowed, "method not allowed")
	}
}

// finish records a completed exchange: metrics, and the access log line.
func (x *exchange) finish(status int, bytes int64, err error) {
	method := x.method
	switch method {
	case "GET", "HEAD", "PUT", "DELETE", "OPTIONS":
	default:
		method = "other"
	}
	x.s.metrics.requests.WithLabelValues(method, strconv.Itoa(status)).Inc()
	if !x.s.cfg.AccessLog {
		return
	}
	attrs := []any{
		"method", x.method, "path", x.path, "range", x.rng, "status", status,
		"bytes", bytes, "duration", time.Since(x.start), "remote", x.remote,
	}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	x.s.log.Info("access", attrs...)
}

// fail answers with status and a one-line plain-text reason, dropping the
// headers that describe a file body.
func (s *Server) fail(x *exchange, status int, reason string) {
	h := &x.ctx.Response.Header
	for _, k := range []string{"ETag", "Last-Modified", "Content-Disposition", "Accept-Ranges"} {
		h.Del(k)
	}
	if status != fasthttp.StatusRequestedRangeNotSatisfiable {
		h.Del("Content-Range")
	}
	x.ctx.SetStatusCode(status)
	x.ctx.SetContentType("text/plain; charset=utf-8")
	x.ctx.SetBodyString(reason + "\n")
}

// failErr answers for a local error such as ErrBadPath: the reason is the
// error text without the package prefix.
func (s *Server) failErr(x *exchange, status int, err error) {
	s.fail(x, status, strings.TrimPrefix(err.Error(), "httpd: "))
}

// failFS answers for a filesystem error by its wire code. Messages stay
// generic: a public client learns the kind of failure, not cluster
// addresses; the full error goes to the log for server-side failures.
func (s *Server) failFS(x *exchange, op string, err error) {
	code := wire.CodeOf(err)
	status := wire.HTTPStatus(code)
	var reason string
	switch code {
	case wire.CodeNotFound, wire.CodeNotDir:
		status, reason = fasthttp.StatusNotFound, "not found"
	case wire.CodeExist:
		reason = "already exists"
	case wire.CodeNotEmpty:
		reason = "directory not empty"
	case wire.CodeIsDir:
		status, reason = fasthttp.StatusConflict, "is a directory"
	case wire.CodeInvalid, wire.CodeRange:
		reason = "invalid request"
	case wire.CodeNameTooLong:
		reason = "name too long"
	case wire.CodePerm, wire.CodeAccess:
		reason = "permission denied"
	case wire.CodeNoSpace:
		reason = "cluster is full"
	case wire.CodeNotLeader, wire.CodeStaleEpoch, wire.CodeUnavailable:
		reason = "storage unavailable, retry later"
		x.ctx.Response.Header.Set("Retry-After", "5")
	case wire.CodeChecksum:
		reason = "stored data failed its checksum"
	default:
		reason = "storage error"
	}
	if errors.Is(err, context.Canceled) && x.s.base.Err() != nil {
		status, reason = fasthttp.StatusServiceUnavailable, "server shutting down"
	}
	if status >= 500 {
		s.log.Warn("filesystem error", "op", op, "path", x.path, "err", err)
	}
	x.ctx.Response.Header.Set(wire.HeaderError, string(code))
	s.fail(x, status, op+": "+reason)
}

// fasthttpLogger sends fasthttp's own messages to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
