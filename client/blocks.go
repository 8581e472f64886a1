package client

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/reelfs/reelfs/internal/wire"
)

// putTries is how many times one member is tried before the next.
const putTries = 2

// deadline is when a block request started now under ctx must end.
func deadline(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(ioTimeout)
}

// newBackoff is the pacing of block retries.
func (c *Client) newBackoff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = retryFirst
	b.MaxInterval = retryMax
	b.MaxElapsedTime = c.cfg.RetryTimeout
	b.Reset()
	return backoff.WithContext(b, ctx)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// upload stores data as a new block and returns where. A member that
// fails is retried, then the group's other members are tried; a member
// that answers NOSPACE makes the client drop its lease and allocate again
// (the new placement may pick another group). Transient failures are
// retried until Config.RetryTimeout; a full cluster gives wire.ErrNoSpace.
// The ids of failed attempts, which may have left the block on some
// members, are discarded at once.
func (c *Client) upload(ctx context.Context, data []byte) (id uint64, group uint32, err error) {
	crc := fmt.Sprintf("%08x", crc32.Checksum(data, c.crc))
	b := c.newBackoff(ctx)
	var tried []wire.BlockRef
	defer func() { c.discardBlocks(tried) }()
	for {
		t, err := c.nextID(ctx, len(data))
		if err != nil {
			if errors.Is(err, wire.ErrNoSpace) {
				return 0, 0, fmt.Errorf("client: place %d-byte block: %w", len(data), err)
			}
			return 0, 0, fmt.Errorf("client: allocate block id: %w", err)
		}
		c.holdPut(t.id) // the caller ends the hold once the slices are marked uploaded
		err = c.putMembers(ctx, t, data, crc)
		if err == nil {
			return t.id, t.group, nil
		}
		c.unholdPut(t.id)
		tried = append(tried, wire.BlockRef{ID: t.id, Group: t.group})
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("client: put block %s: %w (last error: %v)", wire.BlockName(t.id), ctx.Err(), err)
		}
		nospace := errors.Is(err, wire.ErrNoSpace)
		if !nospace && !retryablePut(err) {
			return 0, 0, fmt.Errorf("client: put block %s: %w", wire.BlockName(t.id), err)
		}
		// Every member failed or one is full: place the next try afresh.
		c.dropLease(t.gen)
		next := b.NextBackOff()
		if next == backoff.Stop {
			return 0, 0, fmt.Errorf("client: put block %s: giving up after %v: %w", wire.BlockName(t.id), c.cfg.RetryTimeout, err)
		}
		c.stats.retries.Add(1)
		c.log.Debug("block put failed, placing again", "block", wire.BlockName(t.id), "err", err, "wait", next)
		if err := sleep(ctx, next); err != nil {
			return 0, 0, fmt.Errorf("client: put block: %w", err)
		}
	}
}

// retryablePut reports whether a failed PUT may succeed elsewhere or
// later: the member was unreachable, or the body arrived damaged (the
// chunkserver refuses a CRC mismatch with EINVAL).
func retryablePut(err error) bool {
	return wire.Transient(err) || errors.Is(err, wire.ErrInvalid) || errors.Is(err, wire.ErrIO) ||
		errors.Is(err, wire.ErrChecksum)
}

// putMembers PUTs the block to the placement's members in order until one
// takes it. NOSPACE stops at once.
func (c *Client) putMembers(ctx context.Context, t blockTarget, data []byte, crc string) error {
	var last error
	for _, addr := range t.members {
		for try := 0; try < putTries; try++ {
			err := c.putBlock(ctx, addr, t.id, data, crc)
			if err == nil {
				c.stats.blockPuts.Add(1)
				c.stats.bytesPut.Add(int64(len(data)))
				return nil
			}
			c.stats.putErrors.Add(1)
			last = fmt.Errorf("%s: %w", addr, err)
			if errors.Is(err, wire.ErrNoSpace) || !retryablePut(err) || ctx.Err() != nil {
				return last
			}
		}
	}
	if last == nil {
		return wire.Errorf(wire.ErrUnavailable, "client: placement without members")
	}
	return last
}

// putBlock is one PUT of a block to one chunkserver. The body goes out
// from data without a copy.
func (c *Client) putBlock(ctx context.Context, addr string, id uint64, data []byte, crc string) error {
	_, err := c.data.Put(ctx, addr, id, data, crc)
	return err
}

// blockRef is a block as a slice names it.
type blockRef struct {
	id    uint64
	group uint32
	size  uint32
}

func (b blockRef) pages() uint32 { return (b.size + pageSize - 1) / pageSize }

func (b blockRef) pageLen(p uint32) int {
	return int(min(uint32(pageSize), b.size-p*pageSize))
}

// flight is one page being fetched; done closes when data or err is set.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

// flights dedupes concurrent fetches of the same page, so a prefetch and a
// read (or two readers) never fetch a page twice.
type flights struct {
	mu sync.Mutex // guards m
	m  map[pageKey]*flight
}

// fetchPages returns pages [first, last] of block b, from the cache, from
// a fetch already in flight, or fetched now with one GET per contiguous
// run of missing pages.
func (c *Client) fetchPages(ctx context.Context, b blockRef, first, last uint32) ([][]byte, error) {
	out := make([][]byte, last-first+1)
	type claim struct {
		page uint32
		f    *flight
	}
	var mine, theirs []claim
	fl := &c.flight
	fl.mu.Lock()
	if fl.m == nil {
		fl.m = make(map[pageKey]*flight)
	}
	for p := first; p <= last; p++ {
		k := pageKey{b.id, p}
		if data, ok := c.cache.get(k); ok {
			out[p-first] = data
			continue
		}
		if f, ok := fl.m[k]; ok {
			theirs = append(theirs, claim{p, f})
			continue
		}
		f := &flight{done: make(chan struct{})}
		fl.m[k] = f
		mine = append(mine, claim{p, f})
	}
	fl.mu.Unlock()

	var firstErr error
	for i := 0; i < len(mine); {
		j := i + 1
		for j < len(mine) && mine[j].page == mine[j-1].page+1 {
			j++
		}
		run := mine[i:j]
		var pages [][]byte
		err := firstErr // after one failure the other runs fail without a fetch
		if err == nil {
			pages, err = c.fetchRun(ctx, b, run[0].page, run[len(run)-1].page)
		}
		for n, cl := range run {
			if err == nil {
				cl.f.data = pages[n]
				c.cache.put(pageKey{b.id, cl.page}, pages[n])
				out[cl.page-first] = pages[n]
			} else {
				cl.f.err = err
			}
		}
		fl.mu.Lock()
		for _, cl := range run {
			delete(fl.m, pageKey{b.id, cl.page})
			close(cl.f.done)
		}
		fl.mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		i = j
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for _, cl := range theirs {
		select {
		case <-cl.f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if cl.f.err != nil {
			return nil, cl.f.err
		}
		out[cl.page-first] = cl.f.data
	}
	return out, nil
}

// memberFailure is one member's answer to a failed GET.
type memberFailure struct {
	addr string
	err  error
}

// fetchRun GETs pages [first, last] of block b from the group's members
// in turn (starting at a member chosen by block id, to spread reads). A
// 404, checksum or network error moves on to the next member; when every
// member is unreachable the round is retried with backoff until
// Config.RetryTimeout. The final error names the block and every server
// tried, and matches wire.ErrChecksum when a checksum failed, else
// wire.ErrIO.
func (c *Client) fetchRun(ctx context.Context, b blockRef, first, last uint32) ([][]byte, error) {
	from := int64(first) * pageSize
	to := min(int64(last+1)*pageSize, int64(b.size))
	var fails []memberFailure
	var bo backoff.BackOff
	for {
		members, err := c.members(ctx, b.group, false)
		if err != nil {
			return nil, fmt.Errorf("client: read block %s: %w", wire.BlockName(b.id), err)
		}
		members = c.groups.readOrder(b.group, members, b.id)
		round, pages := c.tryMembers(ctx, b, members, from, to)
		if pages != nil {
			return pages, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: read block %s: %w", wire.BlockName(b.id), ctx.Err())
		}
		// Membership may have changed: refresh it and try new members.
		if fresh, err := c.members(ctx, b.group, true); err == nil {
			var untried []string
			for _, a := range fresh {
				if !triedAddr(round, a) {
					untried = append(untried, a)
				}
			}
			if len(untried) > 0 {
				more, pages := c.tryMembers(ctx, b, untried, from, to)
				if pages != nil {
					return pages, nil
				}
				round = append(round, more...)
			}
		}
		fails = round
		if !allUnavailable(round) {
			break
		}
		if bo == nil {
			bo = c.newBackoff(ctx)
		}
		next := bo.NextBackOff()
		if next == backoff.Stop {
			break
		}
		c.stats.retries.Add(1)
		if sleep(ctx, next) != nil {
			return nil, fmt.Errorf("client: read block %s: %w", wire.BlockName(b.id), ctx.Err())
		}
	}
	return nil, c.blockError(b, fails)
}

func triedAddr(fails []memberFailure, addr string) bool {
	for _, f := range fails {
		if f.addr == addr {
			return true
		}
	}
	return false
}

func allUnavailable(fails []memberFailure) bool {
	for _, f := range fails {
		if !wire.Transient(f.err) {
			return false
		}
	}
	return len(fails) > 0
}

// blockError builds (and logs once) the error for a block no member could
// serve.
func (c *Client) blockError(b blockRef, fails []memberFailure) error {
	sentinel := wire.ErrIO
	parts := make([]string, 0, len(fails))
	servers := make([]string, 0, len(fails))
	for _, f := range fails {
		if errors.Is(f.err, wire.ErrChecksum) {
			sentinel = wire.ErrChecksum
		}
		parts = append(parts, f.addr+": "+f.err.Error())
		servers = append(servers, f.addr)
	}
	if len(fails) == 0 {
		parts = append(parts, "group has no members")
	}
	err := wire.Errorf(sentinel, "client: block %s of group %d unreadable from every server tried (%s)",
		wire.BlockName(b.id), b.group, strings.Join(parts, "; "))
	c.log.Warn("block unreadable", "block", wire.BlockName(b.id), "group", b.group,
		"servers", servers, "code", sentinel.Code, "err", err)
	return err
}

// tryMembers tries each address once and returns the pages from the first
// that answers, or every failure.
func (c *Client) tryMembers(ctx context.Context, b blockRef, addrs []string, from, to int64) ([]memberFailure, [][]byte) {
	var fails []memberFailure
	// Members come in read order (groupCache.readOrder): in-sync copies
	// first, spread by block id.
	for _, addr := range addrs {
		pages, err := c.getRange(ctx, addr, b, from, to)
		if err == nil {
			return nil, pages
		}
		c.stats.fetchErrors.Add(1)
		fails = append(fails, memberFailure{addr, err})
		if ctx.Err() != nil {
			break
		}
	}
	return fails, nil
}

// getRange GETs bytes [from, to) of block b from one chunkserver (the
// whole block without a Range header) and cuts the body into cache
// pages without copying it: the pages are slices of the body, which
// stays alive until every page of the run is evicted (as in readLocal).
func (c *Client) getRange(ctx context.Context, addr string, b blockRef, from, to int64) ([][]byte, error) {
	if lb, ok := c.cfg.Local[addr]; ok {
		return c.readLocal(ctx, lb, b, from, to)
	}
	whole := from == 0 && to == int64(b.size)
	var pages [][]byte
	err := c.data.Get(ctx, addr, b.id, from, to, whole, func(body []byte) error {
		if int64(len(body)) != to-from {
			return wire.Errorf(wire.ErrIO, "get: %d bytes for a range of %d (block size mismatch?)", len(body), to-from)
		}
		pages = cutPages(body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.stats.blocksFetched.Add(1)
	c.stats.bytesFetched.Add(to - from)
	return pages, nil
}

// readLocal reads bytes [from, to) of block b from a chunkserver in this
// process. The pages are slices of one buffer the store reads into (from
// is page-aligned, so also CRC-piece-aligned, and the store uses the
// buffer as it is): no copy after the pread. A page keeps that buffer
// alive until every page of the run is evicted; the pages of one run
// enter the cache together and usually leave it together.
func (c *Client) readLocal(ctx context.Context, lb LocalBlocks, b blockRef, from, to int64) ([][]byte, error) {
	data, err := lb.ReadBlock(ctx, b.id, from, to-from, make([]byte, to-from))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != to-from {
		return nil, wire.Errorf(wire.ErrIO, "get: %d bytes for a range of %d (block size mismatch?)", len(data), to-from)
	}
	pages := cutPages(data)
	c.stats.blocksFetched.Add(1)
	c.stats.bytesFetched.Add(to - from)
	c.stats.localFetches.Add(1)
	return pages, nil
}

// cutPages cuts data, read from page-aligned offset of a block, into cache
// pages that share its array. Each page's capacity ends with it, so no
// append to one can reach into the next.
func cutPages(data []byte) [][]byte {
	pages := make([][]byte, 0, (len(data)+pageSize-1)/pageSize)
	for off := 0; off < len(data); off += pageSize {
		end := min(off+pageSize, len(data))
		pages = append(pages, data[off:end:end])
	}
	return pages
}
