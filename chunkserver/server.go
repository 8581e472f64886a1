package chunkserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/internal/wire"
)

// blockStore is what the HTTP handlers need from the block store.
type blockStore interface {
	Put(ctx context.Context, id uint64, data []byte) (created bool, err error)
	PutSeq(ctx context.Context, id uint64, data []byte) (created bool, seq uint64, err error)
	PutUnless(ctx context.Context, id uint64, data []byte, veto func() bool) (created, skipped bool, err error)
	Stat(ctx context.Context, id uint64) (wire.BlockInfo, error)
	Verify(ctx context.Context, id uint64, buf []byte) (int, error)
	Open(ctx context.Context, id uint64) (*BlockFile, error)
	ReadRange(ctx context.Context, id uint64, pick func(size int64) (off, n int64, err error), buf []byte) (RangeRead, error)
	Delete(ctx context.Context, id uint64) error
	List(ctx context.Context, after uint64, limit int, before int64) (wire.BlockList, error)
	Usage() Usage
	DiskSpace() (DiskSpace, error)
	Close() error
}

// changeFeed is what the HTTP handlers and heartbeats need from the binlog.
type changeFeed interface {
	Read(ctx context.Context, from uint64, limit int) (wire.BinlogReply, error)
	Wait(ctx context.Context, from uint64) error
	Last() uint64
	BytesAfter(ack uint64) uint64
	Err() error
	Close() error
}

var (
	_ blockStore = (*DiskStore)(nil)
	_ changeFeed = (*Binlog)(nil)
)

// Server limits and timeouts.
const (
	// maxRequestBody leaves room above a full block so an oversized PUT
	// reaches the handler and gets a clear EINVAL; far larger bodies are
	// refused by fasthttp while reading (413).
	maxRequestBody = wire.MaxBlockSize + 64<<10
	readTimeout    = 60 * time.Second
	writeTimeout   = 60 * time.Second
	idleTimeout    = 120 * time.Second
	// shutdownGrace bounds how long Run waits for in-flight requests.
	shutdownGrace = 10 * time.Second
)

// Server is a chunkserver: the block store, its binlog, the HTTP API and
// the heartbeat to the tracker.
type Server struct {
	cfg     Config
	log     *slog.Logger
	id      string
	addr    string // advertised
	ln      net.Listener
	lock    *os.File // flock on Dir/LOCK, held while the server lives
	store   blockStore
	binlog  changeFeed
	metrics *metrics
	srv     *fasthttp.Server
	hc      *fasthttp.Client // heartbeats
	leaders *wire.Leaders    // the metaservers, with Config.Meta
	fence   *epochFence      // newest metaserver epoch seen
	crc     *crc32.Table
	born    time.Time      // when New ran: followers that never fetched count from here
	svc     consul.Service // how Run registers in Consul, with Config.Consul

	// Replication: the source side (followers of this member's binlog and
	// the PUTs waiting for them), the follower side (shipper), deleted ids
	// (tombs) and the scrubber.
	followers *followers
	shipper   *shipper
	tombs     *tombstones
	scrub     *scrubber
	kick      chan struct{} // asks the heartbeat loop for a beat now

	bufs     sync.Pool    // *[]byte of wire.MaxBlockSize for GET bodies
	inflight atomic.Int64 // block requests being served
	polling  atomic.Int64 // binlog long-polls waiting

	// polls is cancelled when shutdown starts so long-polls answer at
	// once instead of holding the shutdown for their whole wait.
	polls     context.Context
	stopPolls context.CancelFunc
	stopping  atomic.Bool

	mu      sync.Mutex // guards started and closed
	started bool
	closed  bool
}

// New validates cfg, opens the store and binlog in cfg.Dir and binds the
// listener, so Addr is known before Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkserver: %w", err)
	}
	s := &Server{cfg: cfg, log: logger, born: time.Now()}
	s.polls, s.stopPolls = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.release()
		}
	}()
	var err error
	if s.lock, err = lockDir(cfg.Dir); err != nil {
		return nil, err
	}
	if s.fence, err = loadEpochFence(cfg.Dir); err != nil {
		return nil, err
	}
	s.id = cfg.ID
	if s.id == "" {
		if s.id, err = loadOrCreateID(cfg.Dir); err != nil {
			return nil, err
		}
	}
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("chunkserver: listen: %w", err)
	}
	s.addr = cfg.Advertise
	if s.addr == "" {
		s.addr = s.ln.Addr().String()
		if ta, ok := s.ln.Addr().(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
			logger.Warn("advertising an unspecified address; set Advertise so peers can reach this server", "addr", s.addr)
		}
	}
	s.log = logger.With("chunkserver", s.id)
	blog, err := OpenBinlog(filepath.Join(cfg.Dir, "binlog"), BinlogOptions{Keep: cfg.BinlogKeep, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.binlog = blog
	store, err := OpenDiskStore(context.Background(), cfg.Dir, StoreOptions{
		Name:         s.id + "@" + s.addr,
		Reserve:      cfg.Reserve,
		Changes:      blog,
		Logger:       s.log,
		TrailerCache: cfg.TrailerCache,
	})
	if err != nil {
		return nil, err
	}
	s.store = store
	s.kick = make(chan struct{}, 1)
	s.followers = newFollowers(s.id, s.born)
	s.followers.kick = func() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	s.tombs = newTombstones(1 << 18)
	if s.shipper, err = newShipper(s); err != nil {
		return nil, err
	}
	s.scrub = newScrubber(s)
	s.crc = castagnoli()
	s.bufs.New = func() any {
		b := make([]byte, wire.MaxBlockSize)
		return &b
	}
	s.metrics = newMetrics(s)
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		ErrorHandler:          s.handleBadRequest,
		Logger:                printfLogger{s.log},
		NoDefaultServerHeader: true,
		MaxRequestBodySize:    maxRequestBody,
		Concurrency:           cfg.Concurrency,
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		CloseOnShutdown:       true,
	}
	if cfg.Meta != "" {
		if s.leaders, err = wire.ParseLeaders(cfg.Meta); err != nil {
			return nil, fmt.Errorf("chunkserver: %w", err)
		}
	}
	s.hc = &fasthttp.Client{
		Name:                "reelfs-chunkserver",
		ReadTimeout:         readTimeout,
		WriteTimeout:        writeTimeout,
		MaxIdleConnDuration: idleTimeout,
	}
	if cfg.Consul != nil {
		if s.svc, err = s.consulService(); err != nil {
			return nil, err
		}
	}
	s.log.Info("chunkserver ready", "listen", s.ln.Addr().String(), "advertise", s.addr,
		"group", cfg.Group, "dir", cfg.Dir)
	ok = true
	return s, nil
}

// Addr returns the advertised address (the bound address by default).
func (s *Server) Addr() string { return s.addr }

// ID returns the server's id.
func (s *Server) ID() string { return s.id }

// Run serves HTTP and, when Config.Meta is set, heartbeats to the tracker
// until ctx is cancelled or serving fails. It then shuts down gracefully
// (long-polls answer at once, in-flight requests get shutdownGrace to
// finish), releases the store, binlog and directory lock, and returns once
// every goroutine it started has stopped. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return ErrRunning
	}
	s.started = true
	s.mu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := s.srv.Serve(s.ln)
		if err != nil && s.stopping.Load() && errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("chunkserver: serve: %w", err)
		}
		return nil
	})
	if s.cfg.Meta != "" {
		g.Go(func() error {
			s.heartbeatLoop(gctx)
			return nil
		})
		g.Go(func() error {
			s.shipper.run(gctx)
			return nil
		})
	}
	g.Go(func() error {
		s.scrub.run(gctx)
		return nil
	})
	if s.cfg.Consul != nil {
		g.Go(func() error { return s.cfg.Consul.Register(gctx, s.svc) })
	}
	g.Go(func() error {
		<-gctx.Done()
		s.stopping.Store(true)
		s.stopPolls()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := s.srv.ShutdownWithContext(sctx); err != nil {
			s.log.Warn("shutdown: requests still running after the grace period", "err", err)
		}
		// Serve may not have registered the listener yet; closing it
		// makes such a late Serve return at once.
		s.ln.Close()
		return nil
	})
	err := g.Wait()
	s.log.Info("chunkserver stopped")
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// Close releases a Server whose Run was never called. After Run started,
// Run releases everything itself and Close does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.release()
}

// release closes what New opened, in reverse order.
func (s *Server) release() error {
	var errs []error
	s.stopPolls()
	if s.ln != nil {
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.hc != nil {
		s.hc.CloseIdleConnections()
	}
	if s.shipper != nil {
		s.shipper.blocks.CloseIdleConnections()
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	if s.binlog != nil {
		errs = append(errs, s.binlog.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // closing drops the flock
	}
	return errors.Join(errs...)
}

// member reports this server as the tracker sees it.
func (s *Server) member() wire.Member {
	u := s.store.Usage()
	m := wire.Member{
		ID:        s.id,
		Addr:      s.addr,
		Group:     s.cfg.Group,
		Used:      u.Used,
		Blocks:    u.Blocks,
		Load:      int(s.inflight.Load()),
		Seq:       s.binlog.Last(),
		Healthy:   s.binlog.Err() == nil,
		LastSeen:  time.Now().UnixNano(),
		MinCopies: s.cfg.MinCopies,
		Started:   s.born.UnixNano(),
		Followers: s.followers.report(s.binlog.Last(), s.bytesAfter),
		Sources:   s.shipper.report(),
	}
	sc := s.scrub.snapshot()
	m.Scrub = &sc
	space, err := s.store.DiskSpace()
	if err != nil {
		m.Healthy = false
		return m
	}
	m.Capacity = space.Capacity
	m.Free = space.Free(s.cfg.Reserve)
	// Full: the next block may not fit. The tracker takes a full member
	// out of the write quorum at once, instead of letting its PUTs and
	// copies fail until it lags out.
	m.Full = m.Free < 2*wire.MaxBlockSize
	return m
}

// consulService is how the server registers in Consul: service
// reelfs-chunk at its advertised address, tagged with its group, with its
// member id in Meta (the tracker matches Consul's verdict to heartbeats by
// it), checked at /v1/health.
func (s *Server) consulService() (consul.Service, error) {
	svc, err := consul.HTTPService(consul.ServiceChunk, s.addr, wire.PathHealth)
	if err != nil {
		return svc, fmt.Errorf("chunkserver: %w", err)
	}
	svc.Tags = []string{consul.GroupTag(s.cfg.Group)}
	svc.Meta = map[string]string{consul.MetaMember: s.id, "group": strconv.FormatUint(uint64(s.cfg.Group), 10)}
	return svc, nil
}

// health is nil while the server can take writes as its heartbeat says
// (Member.Healthy): its binlog has not failed and statfs of its disk works.
func (s *Server) health() error {
	if err := s.binlog.Err(); err != nil {
		return err
	}
	_, err := s.store.DiskSpace()
	return err
}

// bytesAfter is the binlog's BytesAfter, for follower reports.
func (s *Server) bytesAfter(ack uint64) uint64 { return s.binlog.BytesAfter(ack) }

// lockDir takes an exclusive flock on dir/LOCK so two chunkservers never
// share one directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chunkserver: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("chunkserver: %s is in use by another chunkserver: %w", dir, err)
	}
	return f, nil
}

// loadOrCreateID reads the server id from dir/id, creating a random one
// (written with temp file, fsync and rename) on first start.
func loadOrCreateID(dir string) (string, error) {
	path := filepath.Join(dir, "id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if err := checkID(id); err != nil {
			return "", fmt.Errorf("chunkserver: %s: %w", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("chunkserver: %w", err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("chunkserver: new id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("chunkserver: write id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("chunkserver: write id: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("chunkserver: write id: %w", err)
	}
	return id, nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printfLogger routes fasthttp's Printf logging into slog.
type printfLogger struct{ log *slog.Logger }

func (l printfLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
