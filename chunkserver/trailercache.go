package chunkserver

import (
	"container/list"
	"io/fs"
	"sync"
)

// trailerCache is a bounded LRU of decoded block trailers keyed by block
// id, so a warm read skips the pread of the file's tail.
//
// An entry is used only for the very file it was read from: lookup
// compares the open file's device, inode and size with the entry's, so a
// file replaced by a rename (a new inode) or truncated or grown never
// meets an old trailer. Blocks are immutable, but a block file can still be replaced (a PUT
// repairing a damaged copy) or removed (DELETE, then perhaps a new PUT of
// the id). Writers call invalidate after the file changed on disk. A
// reader that decodes a trailer from disk must not cache it if the file
// may have changed since it opened it, so fills are guarded by a
// generation: the reader takes gen(id) before opening the file and add
// inserts only if no invalidation of that id's stripe happened since. A
// fill racing an invalidation is dropped, never stored stale.
type trailerCache struct {
	max int // entries; 0 disables the cache

	mu   sync.Mutex
	lru  *list.List // of *cacheEntry, most recently used first
	byID map[uint64]*list.Element
	gens [lockStripes]uint64 // bumped by invalidate, per id % lockStripes
}

type cacheEntry struct {
	id   uint64
	file fileIdentity // the file tr was read from
	tr   trailer
}

func newTrailerCache(max int) *trailerCache {
	return &trailerCache{max: max, lru: list.New(), byID: make(map[uint64]*list.Element)}
}

// lookup returns the cached trailer of id if it was read from the file
// whose stat is fi (same inode, same size). A mismatch is not an error:
// the caller reads the file's own trailer, which reports any damage.
func (c *trailerCache) lookup(id uint64, fi fs.FileInfo) (trailer, bool) {
	if c.max == 0 {
		return trailer{}, false
	}
	file, ok := identityOf(fi)
	if !ok {
		return trailer{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return trailer{}, false
	}
	e := el.Value.(*cacheEntry)
	if e.file != file {
		return trailer{}, false
	}
	c.lru.MoveToFront(el)
	return e.tr, true
}

// gen returns the generation to pass to add for a trailer read from a file
// opened after this call.
func (c *trailerCache) gen(id uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gens[id%lockStripes]
}

// add caches tr, read from the file whose stat is fi, for id unless id's
// stripe was invalidated since gen. The trailer's CRC slice is shared with
// readers and never modified.
func (c *trailerCache) add(id uint64, gen uint64, fi fs.FileInfo, tr trailer) {
	if c.max == 0 {
		return
	}
	file, ok := identityOf(fi)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[id%lockStripes] != gen {
		return
	}
	if el, ok := c.byID[id]; ok {
		e := el.Value.(*cacheEntry)
		e.file, e.tr = file, tr
		c.lru.MoveToFront(el)
		return
	}
	c.byID[id] = c.lru.PushFront(&cacheEntry{id: id, file: file, tr: tr})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.byID, old.Value.(*cacheEntry).id)
	}
}

// invalidate forgets id's trailer and voids fills of its stripe that are
// in progress. Call it after the block file was replaced or removed.
func (c *trailerCache) invalidate(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[id%lockStripes]++
	if el, ok := c.byID[id]; ok {
		c.lru.Remove(el)
		delete(c.byID, id)
	}
}

// drop forgets id's trailer if it is still tr, e.g. after a read with it
// found damage, so the next read checks the file's trailer again.
func (c *trailerCache) drop(id uint64, tr trailer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok && sameTrailer(el.Value.(*cacheEntry).tr, tr) {
		c.lru.Remove(el)
		delete(c.byID, id)
	}
}

// len returns the number of cached trailers.
func (c *trailerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// sameTrailer reports whether a and b are the same decoded trailer value
// (the same CRC table, not just equal contents).
func sameTrailer(a, b trailer) bool {
	return a.length == b.length && len(a.crcs) == len(b.crcs) &&
		(len(a.crcs) == 0 || &a.crcs[0] == &b.crcs[0])
}
