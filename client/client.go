package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/blockclient"
	"github.com/reelfs/reelfs/internal/wire"
)

// HTTP client tuning for bulk transfer on a fast network.
const (
	maxConnsPerHost = 512
	idleConnTimeout = 60 * time.Second
	ioBufferSize    = 64 << 10
	ioTimeout       = 60 * time.Second
	connWaitTimeout = 30 * time.Second
	// blockBodySlack covers anything a chunkserver adds to a block reply.
	blockBodySlack = 64 << 10
)

// Retry pacing for transient errors.
const (
	retryFirst = 10 * time.Millisecond
	retryMax   = time.Second
)

// Client is a reelfs client: namespace calls to the metaserver and the
// file data path to the chunkservers. It is safe for concurrent use. Close
// stops its background goroutines.
type Client struct {
	leaders *wire.Leaders // the metaservers, current leader first
	reqSeq  atomic.Uint64 // numbers request ids within the session
	cfg     Config
	log     *slog.Logger
	session string
	uid     uint32 // owner of what the path helpers create
	gid     uint32

	meta *fasthttp.Client    // metaserver RPCs (bodies up to wire.MaxRPCBody)
	data *blockclient.Client // block PUT/GET (bodies up to a block)
	crc  *crc32.Table

	bufs   *bufPool
	cache  *pageCache
	chunks *chunkCache
	groups *groupCache
	lease  leaser
	space  spaceState
	flight flights
	stats  counters

	upSem  chan struct{} // block PUTs in flight
	preSem chan struct{} // prefetch goroutines
	dirty  *dirtyGauge   // bytes of all write buffers not uploaded yet

	// putMu guards putting: the ids of block PUTs under way (id -> PUTs),
	// from the id's allocation until the write buffer marks the slices
	// uploaded, or the PUT failed. Keep-alives report them with the
	// uploaded slices, so the metaserver's collector of uncommitted
	// uploads never takes a live writer's blocks.
	putMu   sync.Mutex
	putting map[uint64]int

	// sessMu orders keep-alives against opens: an open (or create) holds
	// it shared from its RPC until the inode is in the open set, and a
	// keep-alive holds it exclusively while it snapshots and sends the
	// set, so a keep-alive never drops an open it raced with (the
	// metaserver replaces a session's open set with each keep-alive).
	sessMu sync.RWMutex

	mu     sync.Mutex        // guards inodes and closed
	inodes map[uint64]*inode // inodes with open Files, shared by all handles
	closed bool

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines: session loop, uploads, prefetch
}

// New validates cfg and returns a Client with a fresh random session id.
// It starts the session keep-alive goroutine; Close stops it.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var sid [12]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return nil, fmt.Errorf("client: session id: %w", err)
	}
	leaders, err := wire.ParseLeaders(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		leaders: leaders,
		cfg:     cfg,
		log:     cfg.Logger,
		session: hex.EncodeToString(sid[:]),
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
		meta:    newHTTPClient(wire.MaxRPCBody + blockBodySlack),
		data: blockclient.New(blockclient.Config{
			Name: "reelfs-client", Secret: cfg.Secret, Timeout: ioTimeout,
			MaxConnsPerHost: maxConnsPerHost, MaxBody: cfg.BlockSize + blockBodySlack, BufferSize: ioBufferSize,
		}),
		crc:    crc32.MakeTable(crc32.Castagnoli),
		bufs:   newBufPool(cfg.BlockSize),
		cache:  newPageCache(cfg.CacheBytes),
		chunks: newChunkCache(),
		groups: newGroupCache(),
		upSem:  make(chan struct{}, cfg.Uploads),
		preSem: make(chan struct{}, max(2*cfg.Prefetch, 1)),
		dirty:  newDirtyGauge(cfg.DirtyBytes),
		inodes: make(map[uint64]*inode),
		ctx:    ctx,
		cancel: cancel,
	}
	c.log = c.log.With("session", c.session)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sessionLoop(ctx)
	}()
	if cfg.CommitEvery > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.commitLoop(ctx)
		}()
	}
	return c, nil
}

func newHTTPClient(maxBody int) *fasthttp.Client {
	return &fasthttp.Client{
		Name:                          "reelfs-client",
		MaxConnsPerHost:               maxConnsPerHost,
		MaxIdleConnDuration:           idleConnTimeout,
		MaxConnWaitTimeout:            connWaitTimeout,
		ReadBufferSize:                ioBufferSize,
		WriteBufferSize:               ioBufferSize,
		ReadTimeout:                   ioTimeout,
		WriteTimeout:                  ioTimeout,
		MaxResponseBodySize:           maxBody,
		MaxIdemponentCallAttempts:     1, // retries are ours, with backoff
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}
}

// Session returns the client's session id.
func (c *Client) Session() string { return c.session }

// Close stops the background goroutines (keep-alives, uploads, prefetch)
// and tells the metaserver this session holds nothing open any more. Files
// must be closed first: when some are still open Close shuts down anyway,
// their unflushed writes are lost, and it returns ErrOpenFiles.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	open := len(c.inodes)
	c.mu.Unlock()

	c.cancel()
	c.wg.Wait()
	// A last keep-alive with an empty set lets the metaserver reap orphans
	// this session kept alive now rather than after its session TTL.
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.SessionEvery)
	err := wire.CallLeader(ctx, c.meta, c.leaders, wire.PathMeta+wire.OpSession, c.cfg.Secret, "",
		&wire.SessionReq{Session: c.session}, nil)
	cancel()
	if err != nil {
		c.log.Debug("final keep-alive failed", "err", err)
	}
	c.meta.CloseIdleConnections()
	c.data.CloseIdleConnections()
	if open > 0 {
		return fmt.Errorf("%w: %d inodes", ErrOpenFiles, open)
	}
	return nil
}

// isClosed reports whether Close was called.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// call is one metaserver RPC with retries of transient errors (the
// metaserver unreachable, overloaded or not the leader) until
// Config.RetryTimeout; any other error returns at once. The first attempt
// takes no allocations beyond wire.Call's own.
func (c *Client) call(ctx context.Context, op string, req, resp any) error {
	c.stats.metaCalls.Add(1)
	// A change carries a request id, the same on every retry: a
	// metaserver (a new leader included) applies it at most once and
	// answers a retry of one that happened with its first reply.
	id := ""
	if mutating[op] {
		id = c.session + "-" + strconv.FormatUint(c.reqSeq.Add(1), 36)
	}
	err := wire.CallLeader(ctx, c.meta, c.leaders, wire.PathMeta+op, c.cfg.Secret, id, req, resp)
	if err == nil || !wire.Transient(err) {
		return err
	}
	return c.retry(ctx, op, err, func() error {
		return wire.CallLeader(ctx, c.meta, c.leaders, wire.PathMeta+op, c.cfg.Secret, id, req, resp)
	})
}

// mutating lists the ops whose retry after a lost answer must not apply
// twice (the others are reads, or idempotent).
var mutating = map[string]bool{
	wire.OpCreate: true, wire.OpMkdir: true, wire.OpSymlink: true, wire.OpLink: true,
	wire.OpUnlink: true, wire.OpRmdir: true, wire.OpRename: true, wire.OpSetAttr: true,
	wire.OpSetXattr: true, wire.OpRemoveXattr: true, wire.OpCommit: true,
}

// retry runs fn again with exponential backoff while it fails with a
// transient error, until Config.RetryTimeout after the first failure.
// first is that failure; what it returns on giving up is the last error.
func (c *Client) retry(ctx context.Context, what string, first error, fn func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = retryFirst
	b.MaxInterval = retryMax
	b.MaxElapsedTime = c.cfg.RetryTimeout
	last := first
	op := func() error {
		err := fn()
		if err == nil {
			return nil
		}
		last = err
		if !wire.Transient(err) {
			return backoff.Permanent(err)
		}
		return err
	}
	notify := func(err error, wait time.Duration) {
		c.stats.retries.Add(1)
		c.log.Debug("retrying", "op", what, "err", err, "wait", wait)
	}
	// The first failure already happened: wait before the next attempt.
	b.Reset()
	wait := b.NextBackOff()
	notify(first, wait)
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return fmt.Errorf("%w (last error: %v)", ctx.Err(), first)
	case <-t.C:
	}
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), notify)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}

// sessionLoop sends a keep-alive every SessionEvery until ctx ends.
func (c *Client) sessionLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.SessionEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.SessionEvery)
		if err := c.keepAlive(actx); err != nil && ctx.Err() == nil {
			c.log.Warn("session keep-alive failed", "err", err)
		}
		cancel()
	}
}

// keepAlive sends the set of inodes open in this client and the blocks
// it uploaded and has not committed yet. It is a single attempt: the
// next tick is the retry.
func (c *Client) keepAlive(ctx context.Context) error {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	c.mu.Lock()
	open := make([]uint64, 0, len(c.inodes))
	inodes := make([]*inode, 0, len(c.inodes))
	for ino, n := range c.inodes {
		open = append(open, ino)
		inodes = append(inodes, n)
	}
	c.mu.Unlock()
	sort.Slice(open, func(i, j int) bool { return open[i] < open[j] })
	// PUTs under way first: an id leaves that set only after its slices
	// are marked uploaded, so read in this order no block slips between.
	ids := c.putIDs()
	for _, n := range inodes {
		n.mu.Lock()
		ids = n.wb.uploadedIDs(ids)
		n.mu.Unlock()
	}
	c.stats.metaCalls.Add(1)
	var r wire.SessionReply
	err := wire.CallLeader(ctx, c.meta, c.leaders, wire.PathMeta+wire.OpSession, c.cfg.Secret, "",
		&wire.SessionReq{Session: c.session, Open: open, Uploads: idRanges(ids)}, &r)
	if err == nil {
		c.noteSpace(!r.Full)
	}
	return err
}

// holdPut records a block PUT under way; unholdPut ends it.
func (c *Client) holdPut(id uint64) {
	c.putMu.Lock()
	defer c.putMu.Unlock()
	if c.putting == nil {
		c.putting = make(map[uint64]int)
	}
	c.putting[id]++
}

func (c *Client) unholdPut(id uint64) {
	c.putMu.Lock()
	defer c.putMu.Unlock()
	if c.putting[id]--; c.putting[id] <= 0 {
		delete(c.putting, id)
	}
}

// putIDs lists the block PUTs under way.
func (c *Client) putIDs() []uint64 {
	c.putMu.Lock()
	defer c.putMu.Unlock()
	ids := make([]uint64, 0, len(c.putting))
	for id := range c.putting {
		ids = append(ids, id)
	}
	return ids
}

// idRanges sorts ids and returns them as ranges of consecutive ids: a
// client's uploads come from leased ranges, so this is compact.
func idRanges(ids []uint64) []wire.IDRange {
	if len(ids) == 0 {
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := []wire.IDRange{{ids[0], ids[0]}}
	for _, id := range ids[1:] {
		last := &out[len(out)-1]
		if id <= last[1]+1 {
			last[1] = max(last[1], id)
			continue
		}
		out = append(out, wire.IDRange{id, id})
	}
	return out
}

// goBackground runs fn on a goroutine owned by the client (Close waits
// for it). It reports false, without running fn, once the client closed.
func (c *Client) goBackground(fn func(ctx context.Context)) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
	return true
}
