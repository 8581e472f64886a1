package metaserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/internal/wire"
)

// Config configures a metaserver.
type Config struct {
	Dir    string // data directory; the database lives in Dir/meta
	Listen string // host:port to serve on (":0" picks a port)
	Secret string // cluster secret; empty disables authentication

	HeartbeatTimeout time.Duration // a chunkserver is unhealthy after this long without a heartbeat
	SessionTTL       time.Duration // a client session expires after this long without a keep-alive
	GCInterval       time.Duration // period of the deletion-queue drain, the reaper and the op-log trim
	UploadGCInterval time.Duration // period of the uncommitted-upload scan
	UploadGrace      time.Duration // age of an unreferenced block before it counts as abandoned (never less than SessionTTL)

	// ReplicaLagTime: a chunkserver that has not caught up with an
	// in-sync peer's binlog for this long leaves its group's in-sync set
	// (and PUTs stop waiting for it). ReplicaLagBytes: the same when it is
	// this many bytes of puts behind; 0 disables that bound.
	ReplicaLagTime  time.Duration
	ReplicaLagBytes uint64

	OpLogKeep    int // op-log entries kept; older ones are trimmed
	ReadDirLimit int // default and largest readdir page

	// Concurrency is the most connections served at once: fasthttp gives
	// each connection, idle keep-alives included, its own worker, and
	// answers any more with 503 and closes them. MaxConnsPerIP caps the
	// connections from one address; 0 means no cap (the clients of one
	// host, and all parts of the all-in-one server, share an address).
	// MaxRequestBody is the largest request body. A body is read whole
	// before its handler runs, so request memory stays below about
	// Concurrency x MaxRequestBody (real requests are a few KiB).
	Concurrency    int
	MaxConnsPerIP  int
	MaxRequestBody int

	// Consul, when set, is the agent Run registers the metaserver with
	// (service reelfs-meta, checked at /v1/health) and whose health checks
	// of the chunkservers (service reelfs-chunk) the tracker follows: a
	// chunkserver is then healthy only while it heartbeats, reports itself
	// healthy and its Consul check passes. ConsulStale and ConsulGrace
	// bound how far an old or incomplete view of Consul is trusted (see
	// consulRules). Nil: the embedded mode, heartbeats only.
	Consul      *consul.Client
	ConsulStale time.Duration
	ConsulGrace time.Duration

	// HA runs this metaserver as one of several (it needs Consul): they
	// contend for the leader lock HAPrefix/leader; the leader serves and
	// keeps the in-sync set and epoch in HAPrefix/state; the others
	// follow its op log and answer NOTLEADER naming it. An answer waits
	// until every in-sync follower holds the change; a follower that has
	// not caught up for HALag leaves the set first.
	HA       bool
	HAPrefix string
	HALag    time.Duration

	Logger *slog.Logger // nil discards logs
}

// DefaultConfig returns the defaults; Dir must still be set.
func DefaultConfig() Config {
	return Config{
		Listen:           "127.0.0.1:9400",
		HeartbeatTimeout: 6 * time.Second,
		ReplicaLagTime:   10 * time.Second,
		ReplicaLagBytes:  1 << 30,
		SessionTTL:       30 * time.Second,
		GCInterval:       2 * time.Second,
		UploadGCInterval: time.Minute,
		UploadGrace:      10 * time.Minute,
		OpLogKeep:        1_000_000,
		ReadDirLimit:     1000,
		Concurrency:      1024,
		MaxRequestBody:   4 << 20,
		ConsulStale:      10 * time.Second,
		ConsulGrace:      8 * time.Second,
		HAPrefix:         defaultHAPrefix,
		HALag:            defaultHALag,
	}
}

// Validate checks every field.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Dir == "":
		return bad("Dir is required")
	case c.Listen == "":
		return bad("Listen is required")
	case c.HeartbeatTimeout <= 0:
		return bad("HeartbeatTimeout %v must be positive", c.HeartbeatTimeout)
	case c.ReplicaLagTime <= 0:
		return bad("ReplicaLagTime %v must be positive", c.ReplicaLagTime)
	case c.SessionTTL <= 0:
		return bad("SessionTTL %v must be positive", c.SessionTTL)
	case c.GCInterval <= 0:
		return bad("GCInterval %v must be positive", c.GCInterval)
	case c.UploadGCInterval <= 0:
		return bad("UploadGCInterval %v must be positive", c.UploadGCInterval)
	case c.UploadGrace <= 0:
		return bad("UploadGrace %v must be positive", c.UploadGrace)
	case c.OpLogKeep <= 0:
		return bad("OpLogKeep %d must be positive", c.OpLogKeep)
	case c.ReadDirLimit <= 0 || c.ReadDirLimit > 100_000:
		return bad("ReadDirLimit %d must be in 1..100000", c.ReadDirLimit)
	case c.Concurrency <= 0 || c.Concurrency > 1<<20:
		return bad("Concurrency %d must be in 1..%d", c.Concurrency, 1<<20)
	case c.MaxConnsPerIP < 0 || c.MaxConnsPerIP > c.Concurrency:
		return bad("MaxConnsPerIP %d must be in 0..Concurrency (%d)", c.MaxConnsPerIP, c.Concurrency)
	case c.Consul != nil && c.ConsulStale <= 0:
		return bad("ConsulStale %v must be positive", c.ConsulStale)
	case c.Consul != nil && c.ConsulGrace < 0:
		return bad("ConsulGrace %v must not be negative", c.ConsulGrace)
	case c.HA && c.Consul == nil:
		return bad("HA needs Consul (the leader lock and the in-sync set live there)")
	case c.HA && (c.HAPrefix == "" || strings.HasPrefix(c.HAPrefix, "/")):
		return bad("HAPrefix %q must be non-empty and not start with /", c.HAPrefix)
	case c.HA && (c.HALag < 100*time.Millisecond || c.HALag > time.Minute):
		return bad("HALag %v must be in 100ms..1m", c.HALag)
	case c.MaxRequestBody < minRequestBody || c.MaxRequestBody > wire.MaxRPCBody:
		return bad("MaxRequestBody %d must be in %d..%d", c.MaxRequestBody, minRequestBody, wire.MaxRPCBody)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("Listen %q: %v", c.Listen, err)
	}
	return nil
}

// minRequestBody is the smallest MaxRequestBody: room for an xattr value
// and a commit of a few hundred slices.
const minRequestBody = 256 << 10

// Server is a metaserver: the core state machine served over HTTP, plus
// the background loops (deletion queue, uncommitted uploads, session and
// orphan reaper, op-log trim) that Run owns.
type Server struct {
	cfg     Config
	log     *slog.Logger
	core    *core
	gc      *collector
	ln      net.Listener
	srv     *fasthttp.Server
	metrics *metrics
	ops     map[string]*opEntry
	svc     consul.Service // how Run registers in Consul, with Config.Consul
	ha      *ha            // failover, with Config.HA; nil otherwise

	mu      sync.Mutex // guards state
	running bool       // Run was called
	closed  bool       // resources released
}

// opEntry is one metadata op: its handler and its latency observer.
type opEntry struct {
	name    string
	handle  func(ctx context.Context, rc *fasthttp.RequestCtx) (any, error)
	latency prometheus.Observer
}

// New validates cfg, opens the database (creating the root directory on
// first start) and binds the listener, so Addr works at once.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := openCore(coreConfig{
		Dir:              cfg.Dir,
		SessionTTL:       cfg.SessionTTL,
		HeartbeatTimeout: cfg.HeartbeatTimeout,
		ISR:              isrRules{LagTime: cfg.ReplicaLagTime, LagBytes: cfg.ReplicaLagBytes},
		ReadDirLimit:     cfg.ReadDirLimit,
		Logger:           log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.Consul != nil {
		c.tracker.useConsul(consulRules{Stale: cfg.ConsulStale, Grace: cfg.ConsulGrace})
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("metaserver: listen: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		core:    c,
		gc:      newCollector(c, cfg.Secret, cfg.UploadGrace, cfg.OpLogKeep, log),
		ln:      ln,
		metrics: newMetrics(c),
	}
	if cfg.Consul != nil {
		if s.svc, err = consul.HTTPService(consul.ServiceMeta, s.Addr(), wire.PathHealth); err != nil {
			ln.Close()
			c.close()
			return nil, fmt.Errorf("metaserver: %w", err)
		}
	}
	if cfg.HA {
		if s.ha, err = newHA(c, cfg.Consul, cfg, s.Addr(), s.svc.CheckID(), log); err != nil {
			ln.Close()
			c.close()
			return nil, fmt.Errorf("metaserver: %w", err)
		}
		s.ha.metrics = newHAMetrics(s.metrics.reg, s.ha)
		s.gc.leader = func() bool { ok, _ := s.ha.isLeader(); return ok }
		s.gc.epoch = s.ha.currentEpoch
	}
	s.ops = s.opTable()
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "reelfs-metaserver",
		Concurrency:           cfg.Concurrency,
		MaxConnsPerIP:         cfg.MaxConnsPerIP,
		MaxRequestBodySize:    cfg.MaxRequestBody,
		NoDefaultServerHeader: true,
		ReadTimeout:           5 * time.Minute,
		IdleTimeout:           5 * time.Minute,
		Logger:                fasthttpLogger{log},
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves requests and runs the background loops until ctx is
// cancelled, then shuts down gracefully, closes the database and returns
// once everything stopped. It returns nil after a cancellation.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running || s.closed {
		s.mu.Unlock()
		return fmt.Errorf("metaserver: Run called twice or after Close: %w", ErrClosed)
	}
	s.running = true
	s.mu.Unlock()
	s.log.Info("metaserver listening", "addr", s.Addr(), "dir", s.cfg.Dir)

	eg, ectx := errgroup.WithContext(ctx)
	if s.cfg.Consul != nil {
		eg.Go(func() error { return s.cfg.Consul.Register(ectx, s.svc) })
		eg.Go(func() error { return s.core.watchConsul(ectx, s.cfg.Consul) })
	}
	if s.ha != nil {
		eg.Go(func() error { return s.ha.run(ectx) })
	}
	eg.Go(func() error {
		if err := s.srv.Serve(s.ln); err != nil && ectx.Err() == nil {
			return fmt.Errorf("metaserver: serve: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		<-ectx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.ShutdownWithContext(sctx); err != nil {
			s.log.Warn("metaserver shutdown", "err", err)
		}
		// Shutdown only closes listeners Serve already registered; if the
		// context ended before Serve got that far, this makes it return.
		s.ln.Close()
		return nil
	})
	eg.Go(func() error {
		return s.every(ectx, "drain deletion queue", s.cfg.GCInterval, s.leaderOnly(true, func(ctx context.Context) error {
			_, err := s.gc.drain(ctx)
			return err
		}))
	})
	eg.Go(func() error {
		return s.every(ectx, "collect uploads", s.cfg.UploadGCInterval, s.leaderOnly(true, func(ctx context.Context) error {
			_, err := s.gc.collectUploads(ctx)
			return err
		}))
	})
	eg.Go(func() error {
		return s.every(ectx, "reap sessions", min(s.cfg.GCInterval, s.cfg.SessionTTL/2), s.leaderOnly(false, func(ctx context.Context) error {
			_, err := s.core.reap(ctx)
			return err
		}))
	})
	eg.Go(func() error {
		return s.every(ectx, "in-sync sets", time.Second, s.leaderOnly(false, s.core.refreshISR))
	})
	eg.Go(func() error {
		return s.every(ectx, "trim op log", s.cfg.GCInterval, func(ctx context.Context) error {
			_, err := s.gc.trimLog(ctx)
			return err
		})
	})
	err := eg.Wait()
	s.gc.blocks.CloseIdleConnections()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if cerr := s.core.close(); err == nil && cerr != nil {
		err = fmt.Errorf("metaserver: close db: %w", cerr)
	}
	s.log.Info("metaserver stopped", "addr", s.Addr())
	return err
}

// leaderOnly wraps a background task that changes the namespace or
// talks to chunkservers: with failover it runs only on the leader, and
// with committed also only once every change so far is held by every
// in-sync member, so a deposed leader that has not noticed yet deletes no
// block because of a change that will not survive.
func (s *Server) leaderOnly(committed bool, fn func(context.Context) error) func(context.Context) error {
	if s.ha == nil {
		return fn
	}
	return func(ctx context.Context) error {
		if ok, _ := s.ha.isLeader(); !ok {
			return nil
		}
		if committed {
			if err := s.ha.waitCommitted(ctx, s.core.lastSeq()); err != nil {
				return nil
			}
		}
		return fn(ctx)
	}
}

// every runs fn each period until ctx ends; errors are logged, not fatal.
func (s *Server) every(ctx context.Context, what string, period time.Duration, fn func(context.Context) error) error {
	if period <= 0 {
		period = time.Second
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("background task failed", "task", what, "err", err)
		}
	}
}

// Close releases the listener and the database of a server whose Run was
// never called. A running server stops when Run's context is cancelled.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("metaserver: Close of a running server: cancel Run's context instead")
	}
	if s.closed {
		return nil
	}
	s.closed = true
	lerr := s.ln.Close()
	if err := s.core.close(); err != nil {
		return fmt.Errorf("metaserver: close db: %w", err)
	}
	if lerr != nil {
		return fmt.Errorf("metaserver: close listener: %w", lerr)
	}
	return nil
}

// ---- HTTP ----

var (
	pathMetrics = []byte("/metrics")
	pathHealth  = []byte(wire.PathHealth)
	pathMeta    = []byte(wire.PathMeta)
)

func (s *Server) handle(rc *fasthttp.RequestCtx) {
	path := rc.Path()
	if rc.IsGet() {
		switch {
		case bytes.Equal(path, pathMetrics):
			s.metrics.handler(rc)
			return
		case bytes.Equal(path, pathHealth):
			// Unauthenticated (Consul's check cannot send the secret):
			// one status word, nothing about the cluster.
			rc.Response.Header.Set("Cache-Control", "no-store")
			rc.SetContentType("text/plain; charset=utf-8")
			if err := s.core.health(); err != nil {
				rc.SetStatusCode(fasthttp.StatusServiceUnavailable)
				rc.SetBodyString("unhealthy")
				return
			}
			rc.SetBodyString("ok")
			return
		}
	}
	if !wire.Authorized(rc, s.cfg.Secret) {
		wire.ReplyError(rc, wire.Errorf(wire.ErrUnauthorized, "missing or wrong cluster secret"))
		return
	}
	if rc.IsGet() && string(path) == wire.PathBackup {
		s.serveBackup(rc)
		return
	}
	if s.ha != nil && rc.IsPost() && string(path) == wire.PathOpLogLeave {
		s.ha.serveLeave(rc)
		return
	}
	if s.ha != nil && rc.IsGet() {
		switch string(path) {
		case wire.PathOpLog:
			s.ha.serveFetch(rc)
			return
		case wire.PathOpLogEpoch:
			s.ha.serveEpochs(rc)
			return
		case wire.PathOpLogSnap:
			s.ha.serveSnapshot(rc)
			return
		case wire.PathHA:
			wire.ReplyJSON(rc, s.ha.status())
			return
		}
	}
	if !bytes.HasPrefix(path, pathMeta) {
		wire.ReplyError(rc, errNoEnt("no such path %q", path))
		return
	}
	if !rc.IsPost() {
		wire.ReplyError(rc, errInval("method %s not allowed; use POST", rc.Method()))
		rc.Response.Header.Set("Allow", fasthttp.MethodPost)
		rc.SetStatusCode(fasthttp.StatusMethodNotAllowed)
		return
	}
	op := s.ops[string(path[len(pathMeta):])]
	if op == nil {
		wire.ReplyError(rc, errInval("unknown op %q", path[len(pathMeta):]))
		rc.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	start := time.Now()
	var (
		reply any
		err   error
	)
	if s.ha != nil {
		reply, err = s.haHandle(rc, op)
	} else {
		reply, err = s.runOp(rc, op)
	}
	code := "OK"
	if err != nil {
		code = string(wire.CodeOf(err))
		if code == string(wire.CodeIO) {
			s.log.Error("metadata op failed", "op", op.name, "err", err)
		}
		wire.ReplyError(rc, err)
	} else {
		wire.ReplyJSON(rc, reply)
	}
	op.latency.Observe(time.Since(start).Seconds())
	s.metrics.ops.WithLabelValues(op.name, code).Inc()
}

// haHandle runs an op on a metaserver with failover: refused unless it
// leads, and answered only once every in-sync member holds every change
// the answer may reflect (a read included, so nothing is seen that a
// failover could take back).
func (s *Server) haHandle(rc *fasthttp.RequestCtx, op *opEntry) (any, error) {
	if ok, _ := s.ha.isLeader(); !ok {
		return nil, s.ha.notLeader()
	}
	reply, err := s.runOp(rc, op)
	if werr := s.ha.waitCommitted(rc, s.core.lastSeq()); werr != nil {
		return nil, werr
	}
	return reply, err
}

type empty struct{}

// call adapts a core op with a reply to the HTTP table.
func call[Req, Rep any](fn func(context.Context, *Req) (Rep, error)) func(context.Context, *fasthttp.RequestCtx) (any, error) {
	return func(ctx context.Context, rc *fasthttp.RequestCtx) (any, error) {
		var req Req
		if err := wire.DecodeBody(rc, &req); err != nil {
			return nil, err
		}
		rep, err := fn(ctx, &req)
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
}

// exec adapts a core op without a reply; it answers {}.
func exec[Req any](fn func(context.Context, *Req) error) func(context.Context, *fasthttp.RequestCtx) (any, error) {
	return call(func(ctx context.Context, req *Req) (empty, error) {
		return empty{}, fn(ctx, req)
	})
}

func (s *Server) opTable() map[string]*opEntry {
	c := s.core
	creator := func(op string) func(context.Context, *wire.CreateReq) (wire.Attr, error) {
		return func(ctx context.Context, req *wire.CreateReq) (wire.Attr, error) {
			if op == wire.OpCreate && req.Target != "" && req.Mode&wire.ModeType == wire.ModeSymlink {
				return c.create(ctx, wire.OpSymlink, req)
			}
			return c.create(ctx, op, req)
		}
	}
	handlers := map[string]func(context.Context, *fasthttp.RequestCtx) (any, error){
		wire.OpLookup:      call(c.lookup),
		wire.OpResolve:     call(c.resolve),
		wire.OpGetAttr:     call(c.getAttr),
		wire.OpSetAttr:     call(c.setAttr),
		wire.OpMkdir:       call(creator(wire.OpMkdir)),
		wire.OpCreate:      call(creator(wire.OpCreate)),
		wire.OpSymlink:     call(creator(wire.OpSymlink)),
		wire.OpUnlink:      call(c.unlinkReply),
		wire.OpRmdir:       call(c.rmdirReply),
		wire.OpRename:      exec(c.rename),
		wire.OpLink:        call(c.link),
		wire.OpReadlink:    call(c.readlink),
		wire.OpReadDir:     call(c.readDir),
		wire.OpGetXattr:    call(c.getXattr),
		wire.OpSetXattr:    exec(c.setXattr),
		wire.OpListXattr:   call(c.listXattr),
		wire.OpRemoveXattr: exec(c.removeXattr),
		wire.OpStatFS: call(func(ctx context.Context, _ *empty) (wire.StatFS, error) {
			return c.statFS(ctx), nil
		}),
		wire.OpOpen:    call(c.open),
		wire.OpRelease: exec(c.release),
		wire.OpSession: call(func(ctx context.Context, req *wire.SessionReq) (wire.SessionReply, error) {
			if err := c.keepAlive(ctx, req); err != nil {
				return wire.SessionReply{}, err
			}
			return wire.SessionReply{Full: c.full()}, nil
		}),
		wire.OpDiscard:   exec(c.discard),
		wire.OpReadChunk: call(c.readChunk),
		wire.OpCommit:    call(c.commit),
		wire.OpAlloc:     call(c.alloc),
		wire.OpGroups: call(func(ctx context.Context, _ *empty) (wire.GroupsReply, error) {
			r := c.groups(ctx)
			if s.ha != nil {
				st := s.ha.status()
				r.Meta = &st
			}
			return r, nil
		}),
		wire.OpHeartbeat: call(func(ctx context.Context, m *wire.Member) (wire.HeartbeatReply, error) {
			r, err := c.heartbeat(ctx, m)
			if s.ha != nil {
				r.Epoch = s.ha.currentEpoch()
			}
			return r, err
		}),
		wire.OpRemoveMember: exec(c.removeMember),
		wire.OpLock:         call(c.lock),
	}
	ops := make(map[string]*opEntry, len(handlers))
	for name, h := range handlers {
		ops[name] = &opEntry{name: name, handle: h, latency: s.metrics.latency.WithLabelValues(name)}
	}
	return ops
}

// fasthttpLogger routes fasthttp's own messages to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

var _ fasthttp.Logger = fasthttpLogger{}
