package client

import (
	"container/list"
	"sync"
	"sync/atomic"
)

// pageSize is the unit of the block cache. Blocks are cut into pages of
// this size (the last page of a block may be shorter), so a random read
// fetches and caches only the pages it touches.
const pageSize = 256 << 10

// pageKey names one page of one block.
type pageKey struct {
	id   uint64
	page uint32
}

type pageEntry struct {
	key  pageKey
	data []byte
}

// pageCache is an LRU of block pages bounded by bytes. Pages are
// immutable (blocks never change), so a page handed out by get may be read
// without a lock for as long as the caller holds it; eviction only drops
// the cache's reference.
type pageCache struct {
	limit int64

	mu    sync.Mutex // guards bytes, ll and items
	bytes int64
	ll    *list.List // front = most recently used; values are *pageEntry
	items map[pageKey]*list.Element

	hits   atomic.Int64
	misses atomic.Int64
}

func newPageCache(limit int64) *pageCache {
	return &pageCache{limit: limit, ll: list.New(), items: make(map[pageKey]*list.Element)}
}

// get returns the cached page and marks it recently used.
func (c *pageCache) get(k pageKey) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.items[k]
	if ok {
		c.ll.MoveToFront(e)
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.Value.(*pageEntry).data, true
}

// contains reports whether k is cached without touching its recency or
// the hit counters (prefetch planning uses it).
func (c *pageCache) contains(k pageKey) bool {
	c.mu.Lock()
	_, ok := c.items[k]
	c.mu.Unlock()
	return ok
}

// put inserts a page (replacing an existing one) and evicts least recently
// used pages until the cache fits its limit. A page larger than the limit
// is not cached.
func (c *pageCache) put(k pageKey, data []byte) {
	n := int64(len(data))
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		old := e.Value.(*pageEntry)
		c.bytes += n - int64(len(old.data))
		old.data = data
		c.ll.MoveToFront(e)
	} else {
		c.items[k] = c.ll.PushFront(&pageEntry{key: k, data: data})
		c.bytes += n
	}
	for c.bytes > c.limit {
		e := c.ll.Back()
		pe := e.Value.(*pageEntry)
		c.ll.Remove(e)
		delete(c.items, pe.key)
		c.bytes -= int64(len(pe.data))
	}
}

// size returns the bytes and pages cached now.
func (c *pageCache) size() (bytes int64, pages int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, len(c.items)
}
