package client

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/internal/chunk"
	"github.com/reelfs/reelfs/internal/wire"
)

// readFanout bounds the blocks one read fetches at the same time.
const readFanout = 8

// readAround is the least a random read fetches from its start (within
// its block).
const readAround = 1 << 20

// blockPiece is a run of a read that lives in a block: bytes [off, off+n)
// of block b, going to dst.
type blockPiece struct {
	b   blockRef
	off uint32
	n   uint32
	dst []byte // nil when planning a prefetch
}

// readRange fills buf with the file's bytes at off (the caller checked
// the range against the size). Bytes in memory and holes are filled while
// resolving; block bytes are fetched after, several blocks at once. A
// sequential read fetches whole blocks, a random one only the pages it
// needs.
func (c *Client) readRange(ctx context.Context, n *inode, buf []byte, off int64, seq bool) error {
	pieces, err := c.plan(ctx, n, buf, off, int64(len(buf)))
	if err != nil {
		return err
	}
	return c.fetchPieces(ctx, pieces, seq)
}

// plan resolves bytes [off, off+length) of n chunk by chunk into block
// pieces. With buf it also copies in-memory bytes and zeroes holes into
// buf (which starts at off); without (prefetch) it only lists pieces.
func (c *Client) plan(ctx context.Context, n *inode, buf []byte, off, length int64) ([]blockPiece, error) {
	var pieces []blockPiece
	for pos := int64(0); pos < length; {
		at := off + pos
		idx := uint32(at / wire.ChunkSize)
		a := uint32(at % wire.ChunkSize)
		k := min(length-pos, wire.ChunkSize-int64(a))
		var dst []byte
		if buf != nil {
			dst = buf[pos : pos+k]
		}
		var err error
		pieces, err = c.resolveChunk(ctx, n, idx, a, a+uint32(k), dst, pieces)
		if err != nil {
			return nil, err
		}
		pos += k
	}
	return pieces, nil
}

// resolveChunk resolves bytes [a, b) of chunk idx: the committed slice
// list, overlaid by n's pending slices in write order. A commit between
// reading the committed list and locking n would move slices from the
// pending list into a committed list this read does not have yet, so the
// read starts over when n's version moved meanwhile.
func (c *Client) resolveChunk(ctx context.Context, n *inode, idx, a, b uint32, dst []byte, out []blockPiece) ([]blockPiece, error) {
	chunkStart := uint64(idx) * wire.ChunkSize
	for {
		n.mu.Lock()
		ver := n.version
		committedSize := n.attr.Size
		n.mu.Unlock()
		var committed []wire.Slice
		if chunkStart < committedSize {
			var err error
			committed, err = c.chunkSlices(ctx, n.ino, idx, ver)
			if err != nil {
				return nil, err
			}
		}
		n.mu.Lock()
		if n.version != ver || n.attr.Size != committedSize {
			n.mu.Unlock()
			continue
		}
		out = resolveInto(n.wb, idx, committed, a, b, dst, out)
		n.mu.Unlock()
		return out, nil
	}
}

// resolveInto resolves bytes [a, b) of chunk idx over committed followed
// by the write buffer's slices. It copies in-memory bytes and zeroes holes
// into dst (nil when planning a prefetch) and appends the pieces that
// must come from blocks to out. The inode's mutex must be held: in-memory
// bytes are only stable under it.
func resolveInto(wb *writeBuffer, idx uint32, committed []wire.Slice, a, b uint32, dst []byte, out []blockPiece) []blockPiece {
	for _, p := range chunk.Resolve(wb.overlay(idx, committed), a, b) {
		var d []byte
		if dst != nil {
			d = dst[p.Pos-a : p.End()-a]
		}
		switch {
		case p.ID == 0:
			clear(d)
		case p.ID&localBit != 0:
			if d != nil {
				copy(d, wb.local(idx, p.ID, p.Off, p.Len))
			}
		default:
			out = append(out, blockPiece{b: blockRef{id: p.ID, group: p.Group, size: p.Size}, off: p.Off, n: p.Len, dst: d})
		}
	}
	return out
}

// fetchPieces fills the pieces from their blocks, one fetch per block,
// blocks in parallel.
func (c *Client) fetchPieces(ctx context.Context, pieces []blockPiece, seq bool) error {
	if len(pieces) == 0 {
		return nil
	}
	var order []uint64
	byBlock := make(map[uint64][]blockPiece)
	for _, p := range pieces {
		if _, ok := byBlock[p.b.id]; !ok {
			order = append(order, p.b.id)
		}
		byBlock[p.b.id] = append(byBlock[p.b.id], p)
	}
	if len(order) == 1 {
		return c.fetchBlock(ctx, byBlock[order[0]], seq)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readFanout)
	for _, id := range order {
		ps := byBlock[id]
		g.Go(func() error { return c.fetchBlock(gctx, ps, seq) })
	}
	return g.Wait()
}

// fetchBlock fills pieces of one block: the whole block when reading
// sequentially (the cache then serves the following reads), else only
// the pages the pieces touch, with the read-around fetched beside them.
func (c *Client) fetchBlock(ctx context.Context, ps []blockPiece, seq bool) error {
	b := ps[0].b
	if b.size == 0 {
		return wire.Errorf(wire.ErrIO, "client: block %s has size 0 in its slice", wire.BlockName(b.id))
	}
	first, last := b.pages()-1, uint32(0)
	if seq {
		first = 0
		last = b.pages() - 1
	} else {
		around := uint32(0)
		for _, p := range ps {
			first = min(first, p.off/pageSize)
			last = max(last, (p.off+max(p.n, 1)-1)/pageSize)
			around = max(around, (p.off+max(p.n, readAround)-1)/pageSize)
		}
		around = min(around, b.pages()-1)
		if around > last {
			c.readAround(b, last+1, around)
		}
	}
	pages, err := c.fetchPages(ctx, b, first, last)
	if err != nil {
		return err
	}
	for _, p := range ps {
		pos, d := p.off, p.dst
		for len(d) > 0 {
			pg := pos / pageSize
			in := pos % pageSize
			if pg < first || pg > last || int(in) >= len(pages[pg-first]) {
				return wire.Errorf(wire.ErrIO, "client: block %s: byte %d is past the block's %d bytes",
					wire.BlockName(b.id), pos, b.size)
			}
			k := copy(d, pages[pg-first][in:])
			d = d[k:]
			pos += uint32(k)
		}
	}
	return nil
}

// readAround fetches pages [first, last] of b in the background. A random
// read waits only for its own pages, but fetches at least readAround
// bytes from its start: the kernel splits a player's 1 MiB seek into
// several smaller reads, and an HTTP range starts with a small piece so
// that its first byte leaves after one page; the reads that follow then
// find these pages cached or in flight. It is skipped when the prefetch
// slots are all busy.
func (c *Client) readAround(b blockRef, first, last uint32) {
	if !c.takePrefetchSlot() {
		return
	}
	c.goPrefetch(func(ctx context.Context) {
		if _, err := c.fetchPages(ctx, b, first, last); err != nil {
			c.log.Debug("read-around failed", "block", wire.BlockName(b.id), "err", err)
		}
	})
}

// takePrefetchSlot takes one of the background-fetch slots without
// waiting; false when they are all busy. A slot taken is given back by
// goPrefetch.
func (c *Client) takePrefetchSlot() bool {
	select {
	case c.preSem <- struct{}{}:
		return true
	default:
		return false
	}
}

// goPrefetch runs fn in the background on a slot takePrefetchSlot took,
// and gives the slot back when fn returns or could not start (the client
// is closing).
func (c *Client) goPrefetch(fn func(ctx context.Context)) {
	ok := c.goBackground(func(ctx context.Context) {
		defer func() { <-c.preSem }()
		fn(ctx)
	})
	if !ok {
		<-c.preSem
	}
}

// prefetch starts fetching, in the background, the blocks of the next
// Config.Prefetch blocks' worth of the file after a sequential read that
// ended at end. It starts at most one prefetch per block of progress and
// skips when too many prefetches are running already.
func (f *File) prefetch(end, size int64) {
	c := f.c
	if c.cfg.Prefetch == 0 {
		return
	}
	limit := min(end+int64(c.cfg.Prefetch)*int64(c.cfg.BlockSize), size)
	f.mu.Lock()
	from := max(f.ahead, end)
	if from >= limit || (limit-from < int64(c.cfg.BlockSize) && limit < size) {
		f.mu.Unlock()
		return
	}
	if !c.takePrefetchSlot() {
		f.mu.Unlock()
		return
	}
	f.ahead = limit
	f.mu.Unlock()
	n := f.n
	c.goPrefetch(func(ctx context.Context) { c.prefetchRange(ctx, n, from, limit-from) })
}

// prefetchRange fetches the whole blocks behind bytes [off, off+length).
func (c *Client) prefetchRange(ctx context.Context, n *inode, off, length int64) {
	pieces, err := c.plan(ctx, n, nil, off, length)
	if err != nil {
		c.log.Debug("prefetch: resolve failed", "ino", n.ino, "off", off, "err", err)
		return
	}
	// The blocks of the window are fetched in parallel: one at a time, a
	// cold sequential read waits for each block's disk read and transfer
	// in turn and runs at a fraction of the disk's speed.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readFanout)
	seen := make(map[uint64]bool)
	for _, p := range pieces {
		if seen[p.b.id] || p.b.size == 0 {
			continue
		}
		seen[p.b.id] = true
		last := p.b.pages() - 1
		if c.cache.contains(pageKey{p.b.id, 0}) && c.cache.contains(pageKey{p.b.id, last}) {
			continue
		}
		c.stats.prefetches.Add(1)
		b := p.b
		g.Go(func() error {
			if _, err := c.fetchPages(gctx, b, 0, last); err != nil {
				c.log.Debug("prefetch failed", "block", wire.BlockName(b.id), "err", err)
				return err
			}
			return nil
		})
	}
	g.Wait() // a failed prefetch only costs the reader its own fetch
}
