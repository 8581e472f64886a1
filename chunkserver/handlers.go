package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// Listing and long-poll bounds.
const (
	defaultListLimit = 1000
	maxListLimit     = 10000
	// maxWait caps a binlog long-poll, as Consul caps blocking queries.
	maxWait = 5 * time.Minute
)

// Endpoint labels for metrics.
const (
	opBlock   = "block"
	opBlocks  = "blocks"
	opBinlog  = "binlog"
	opStatus  = "status"
	opHealth  = "health"
	opMetrics = "metrics"
	opOther   = "other"
)

// handle is the fasthttp handler: it routes, checks the secret and counts
// the request.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	op := opOther
	switch {
	case bytes.HasPrefix(path, []byte(wire.PathBlock)):
		op = opBlock
	case string(path) == wire.PathBlocks:
		op = opBlocks
	case string(path) == wire.PathBinlog:
		op = opBinlog
	case string(path) == wire.PathStatus:
		op = opStatus
	case string(path) == "/metrics":
		op = opMetrics
	case string(path) == wire.PathHealth:
		op = opHealth
	}
	defer func() { s.metrics.observe(op, ctx.Method(), ctx.Response.StatusCode()) }()

	if op == opMetrics {
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		s.metrics.handler(ctx)
		return
	}
	if op == opHealth {
		// Unauthenticated (Consul's check cannot send the secret), so it
		// says one word and nothing about the server.
		if !ctx.IsGet() && !ctx.IsHead() {
			methodNotAllowed(ctx, "GET, HEAD")
			return
		}
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetContentType("text/plain; charset=utf-8")
		if err := s.health(); err != nil {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
			ctx.SetBodyString("unhealthy\n")
			return
		}
		ctx.SetBodyString("ok\n")
		return
	}
	if !wire.Authorized(ctx, s.cfg.Secret) {
		wire.ReplyError(ctx, wire.Errorf(wire.ErrUnauthorized, "chunkserver: missing or wrong cluster secret"))
		return
	}
	switch op {
	case opBlock:
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		start := time.Now()
		s.handleBlock(ctx, string(path[len(wire.PathBlock):]))
		s.metrics.blockSeconds.WithLabelValues(methodLabel(ctx.Method())).Observe(time.Since(start).Seconds())
	case opBlocks:
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.handleList(ctx)
	case opBinlog:
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		s.handleBinlog(ctx)
	case opStatus:
		if !ctx.IsGet() {
			methodNotAllowed(ctx, "GET")
			return
		}
		wire.ReplyJSON(ctx, s.member())
	default:
		wire.ReplyError(ctx, wire.Errorf(wire.ErrNotFound, "chunkserver: no endpoint %q", truncate(string(path), 80)))
	}
}

// handleBlock serves PUT/GET/HEAD/DELETE /v1/block/{id}.
func (s *Server) handleBlock(ctx *fasthttp.RequestCtx, name string) {
	method := string(ctx.Method())
	switch method {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPut, fasthttp.MethodDelete:
	default:
		methodNotAllowed(ctx, "GET, HEAD, PUT, DELETE")
		return
	}
	id, err := wire.ParseBlockName(name)
	if err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	switch method {
	case fasthttp.MethodGet:
		s.getBlock(ctx, id, false)
	case fasthttp.MethodHead:
		s.getBlock(ctx, id, true)
	case fasthttp.MethodPut:
		s.putBlock(ctx, id)
	case fasthttp.MethodDelete:
		if h := ctx.Request.Header.Peek(wire.HeaderEpoch); h != nil {
			e, err := strconv.ParseUint(string(h), 10, 64)
			if err != nil {
				wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: %s %q", wire.HeaderEpoch, truncate(string(h), 40)))
				return
			}
			ok, err := s.fence.admit(e)
			if err != nil {
				s.replyStoreError(ctx, err)
				return
			}
			if !ok {
				wire.ReplyError(ctx, wire.Errorf(wire.ErrStaleEpoch,
					"chunkserver: delete of %s under metaserver epoch %d; epoch %d leads", wire.BlockName(id), e, s.fence.current()))
				return
			}
		}
		s.tombs.add(id)
		if err := s.store.Delete(context.Background(), id); err != nil {
			s.replyStoreError(ctx, err)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

// putBlock stores the request body: 201 when new, 200 when the identical
// block was already stored.
func (s *Server) putBlock(ctx *fasthttp.RequestCtx, id uint64) {
	body := ctx.PostBody()
	if len(body) > wire.MaxBlockSize {
		replyStatus(ctx, fasthttp.StatusRequestEntityTooLarge, wire.Errorf(wire.ErrInvalid,
			"chunkserver: block of %d bytes exceeds the maximum of %d", len(body), wire.MaxBlockSize))
		return
	}
	if h := ctx.Request.Header.Peek(wire.HeaderCRC); h != nil {
		want, ok := parseCRCHeader(h)
		if !ok {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: %s %q: want 8 hex digits",
				wire.HeaderCRC, truncate(string(h), 40)))
			return
		}
		if got := crc32.Checksum(body, s.crc); got != want {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid,
				"chunkserver: block %s: body CRC32C %08x does not match %s %08x (damaged in transit)",
				wire.BlockName(id), got, wire.HeaderCRC, want))
			return
		}
	}
	created, seq, err := s.store.PutSeq(context.Background(), id, body)
	if err != nil {
		s.replyStoreError(ctx, err)
		return
	}
	if err := s.awaitQuorum(id, created, seq); err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	if created {
		s.metrics.bytesWritten.Add(float64(len(body)))
		ctx.SetStatusCode(fasthttp.StatusCreated)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// awaitQuorum waits until the in-sync set holds the block just stored
// (see quorumState). An identical retry has no new entry: it waits for
// everything logged so far, which covers the first attempt's entry. Only
// with a tracker (Meta) is there a group to replicate to.
func (s *Server) awaitQuorum(id uint64, created bool, seq uint64) error {
	if s.cfg.Meta == "" {
		return nil
	}
	if !created || seq == 0 {
		seq = s.binlog.Last()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.polls, s.cfg.AckTimeout)
	defer cancel()
	err := s.followers.wait(ctx, seq, start)
	s.metrics.ackSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.ErrUnavailable, "chunkserver %s: block %s is stored here but the in-sync set %v did not hold it within %v",
			s.id, wire.BlockName(id), s.followers.currentView().isr, s.cfg.AckTimeout)
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.ErrUnavailable, "chunkserver %s: shutting down before block %s was replicated", s.id, wire.BlockName(id))
	}
	return err
}

// parseCRCHeader parses 8 hex digits (either case).
func parseCRCHeader(h []byte) (uint32, bool) {
	if len(h) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(h), 16, 32)
	return uint32(v), err == nil
}

// getBlock serves GET (whole block or one Range) and HEAD. Every byte sent
// was verified against its CRC32C in this request; the range is checked
// against the length in the block's trailer.
func (s *Server) getBlock(ctx *fasthttp.RequestCtx, id uint64, head bool) {
	if head {
		bf, err := s.store.Open(context.Background(), id)
		if err != nil {
			s.replyStoreError(ctx, err)
			return
		}
		size := bf.Size()
		bf.Close()
		ctx.Response.Header.Set(fasthttp.HeaderAcceptRanges, "bytes")
		ctx.SetContentType("application/octet-stream")
		ctx.Response.Header.SetContentLength(int(size))
		ctx.SetStatusCode(fasthttp.StatusOK)
		return
	}
	var spec *rangeSpec
	if h := ctx.Request.Header.Peek(fasthttp.HeaderRange); h != nil {
		sp, err := parseRange(string(h))
		if err != nil {
			wire.ReplyError(ctx, err)
			return
		}
		spec = &sp
	}
	// pick runs once the store knows the block's length; a range that
	// names no byte of it is remembered for the 416 below.
	var rangeErr error
	var rangeSize int64
	pick := func(size int64) (int64, int64, error) {
		rangeErr = nil
		if spec == nil {
			return 0, size, nil
		}
		off, n, err := spec.resolve(size)
		if err != nil {
			rangeErr, rangeSize = err, size
		}
		return off, n, err
	}
	bufp := s.bufs.Get().(*[]byte)
	rr, err := s.store.ReadRange(context.Background(), id, pick, *bufp)
	if err != nil {
		s.bufs.Put(bufp)
		if errors.Is(err, wire.ErrChecksum) {
			s.scrub.requestRepair(id)
		}
		if rangeErr != nil && errors.Is(err, ErrUnsatisfiable) {
			ctx.Response.Header.Set(fasthttp.HeaderContentRange, fmt.Sprintf("bytes */%d", rangeSize))
			replyStatus(ctx, fasthttp.StatusRequestedRangeNotSatisfiable, wire.Errorf(wire.ErrRange,
				"chunkserver: block %s: %v", wire.BlockName(id), err))
			return
		}
		s.replyStoreError(ctx, err)
		return
	}
	n := int64(len(rr.Data))
	ctx.Response.Header.Set(fasthttp.HeaderAcceptRanges, "bytes")
	status := fasthttp.StatusOK
	if spec != nil {
		status = fasthttp.StatusPartialContent
		ctx.Response.Header.Set(fasthttp.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", rr.Off, rr.Off+n-1, rr.Size))
	}
	ctx.SetContentType("application/octet-stream")
	ctx.SetStatusCode(status)
	body := &pooledBody{buf: bufp, pool: &s.bufs}
	body.Reset(rr.Data)
	// fasthttp writes the stream with bytes.Reader's WriteTo (no copy into
	// a response buffer) and then calls Close, which recycles the buffer.
	ctx.Response.SetBodyStream(body, int(n))
	s.metrics.bytesRead.Add(float64(n))
}

// pooledBody is a response body read from a pooled buffer that goes back
// to the pool when fasthttp closes the stream.
type pooledBody struct {
	bytes.Reader
	buf  *[]byte
	pool *sync.Pool
}

// Close returns the buffer to the pool; fasthttp calls it once the body
// was written (or the response was dropped).
func (b *pooledBody) Close() error {
	if b.buf != nil {
		b.Reset(nil)
		b.pool.Put(b.buf)
		b.buf = nil
	}
	return nil
}

// handleList serves GET /v1/blocks?after=ID&limit=N&before=UNIXNANO, all
// decimal; limit 0 or absent means 1000, at most 10000.
func (s *Server) handleList(ctx *fasthttp.RequestCtx) {
	q, err := parseQuery(ctx, "after", "limit", "before")
	if err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	var after uint64
	if v, ok := q["after"]; ok {
		if after, err = parseAfter(v); err != nil {
			wire.ReplyError(ctx, err)
			return
		}
	}
	limit, err := parseLimit(q)
	if err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	var before int64
	if v, ok := q["before"]; ok {
		b, err := strconv.ParseInt(v, 10, 64)
		if err != nil || b < 0 {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: before=%q: want Unix nanoseconds", truncate(v, 40)))
			return
		}
		before = b
	}
	list, err := s.store.List(context.Background(), after, limit, before)
	if err != nil {
		s.replyStoreError(ctx, err)
		return
	}
	wire.ReplyJSON(ctx, list)
}

// parseAfter reads the after parameter: a decimal block id, as the
// metaserver's collector sends it (and as ids appear in wire.BlockInfo).
func parseAfter(v string) (uint64, error) {
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, wire.Errorf(wire.ErrInvalid, "chunkserver: after=%q: want a decimal block id", truncate(v, 40))
	}
	return id, nil
}

// parseLimit reads limit: default when absent or 0, capped at the maximum.
func parseLimit(q map[string]string) (int, error) {
	v, ok := q["limit"]
	if !ok {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, wire.Errorf(wire.ErrInvalid, "chunkserver: limit=%q: want a count", truncate(v, 40))
	}
	if n == 0 {
		return defaultListLimit, nil
	}
	return min(n, maxListLimit), nil
}

// handleBinlog serves GET /v1/binlog?from=SEQ&limit=N&wait=DURATION. With
// wait it blocks until an entry >= from is durable or the wait passes, then
// answers with what it has (possibly no entries).
func (s *Server) handleBinlog(ctx *fasthttp.RequestCtx) {
	q, err := parseQuery(ctx, "from", "limit", "wait", "member")
	if err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	var from uint64
	if v, ok := q["from"]; ok {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: from=%q: want a sequence number", truncate(v, 40)))
			return
		}
	}
	limit, err := parseLimit(q)
	if err != nil {
		wire.ReplyError(ctx, err)
		return
	}
	if member, ok := q["member"]; ok {
		if err := checkID(member); err != nil {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: member=%q: %v", truncate(member, 40), err))
			return
		}
		// The fetch acknowledges every entry below from.
		s.followers.fetched(member, from, s.binlog.Last(), time.Now())
	}
	if v, ok := q["wait"]; ok {
		wait, err := time.ParseDuration(v)
		if err != nil || wait < 0 {
			wire.ReplyError(ctx, wire.Errorf(wire.ErrInvalid, "chunkserver: wait=%q: want a duration such as 10s", truncate(v, 40)))
			return
		}
		if wait > 0 {
			wctx, cancel := context.WithTimeout(s.polls, min(wait, maxWait))
			s.polling.Add(1)
			err := s.binlog.Wait(wctx, max(from, 1))
			s.polling.Add(-1)
			cancel()
			if errors.Is(err, ErrClosed) {
				wire.ReplyError(ctx, wire.Errorf(wire.ErrUnavailable, "chunkserver: shutting down"))
				return
			}
		}
	}
	reply, err := s.binlog.Read(context.Background(), from, limit)
	if err != nil {
		s.replyStoreError(ctx, err)
		return
	}
	wire.ReplyJSON(ctx, reply)
}

// parseQuery returns the query parameters, refusing unknown and repeated
// ones so a typo fails loudly instead of being ignored.
func parseQuery(ctx *fasthttp.RequestCtx, allowed ...string) (map[string]string, error) {
	q := make(map[string]string, len(allowed))
	for k, v := range ctx.QueryArgs().All() {
		key := string(k)
		if key == "" && len(v) == 0 {
			continue
		}
		known := false
		for _, a := range allowed {
			known = known || a == key
		}
		if !known {
			return nil, wire.Errorf(wire.ErrInvalid, "chunkserver: unknown query parameter %q", truncate(key, 40))
		}
		if _, dup := q[key]; dup {
			return nil, wire.Errorf(wire.ErrInvalid, "chunkserver: query parameter %q given twice", key)
		}
		q[key] = string(v)
	}
	return q, nil
}

// replyStoreError answers with a store error, counting and logging damage.
func (s *Server) replyStoreError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, wire.ErrChecksum):
		s.metrics.checksumErrors.Inc()
		s.log.Error("block failed verification", "err", err)
	case errors.Is(err, ErrClosed):
		err = wire.Errorf(wire.ErrUnavailable, "chunkserver: shutting down")
	case wire.CodeOf(err) == wire.CodeIO:
		s.log.Error("request failed", "path", string(ctx.Path()), "err", err)
	}
	wire.ReplyError(ctx, err)
}

// handleBadRequest answers requests fasthttp could not parse.
func (s *Server) handleBadRequest(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadRequest
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &ne) && ne.Timeout():
		status = fasthttp.StatusRequestTimeout
	}
	replyStatus(ctx, status, wire.Errorf(wire.ErrInvalid, "chunkserver: bad request: %v", err))
}

// replyStatus writes err like wire.ReplyError but with an explicit status.
func replyStatus(ctx *fasthttp.RequestCtx, status int, err error) {
	wire.ReplyError(ctx, err)
	ctx.SetStatusCode(status)
}

// methodNotAllowed answers 405 with the allowed methods.
func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set(fasthttp.HeaderAllow, allow)
	replyStatus(ctx, fasthttp.StatusMethodNotAllowed, wire.Errorf(wire.ErrInvalid,
		"chunkserver: method %s not allowed here; allowed: %s", truncate(string(ctx.Method()), 20), allow))
}

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
