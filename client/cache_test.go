package client

import (
	"sync"
	"testing"
)

func page(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

func TestPageCacheLimitAndLRUOrder(t *testing.T) {
	c := newPageCache(3 * 100)
	for i := 0; i < 3; i++ {
		c.put(pageKey{id: 1, page: uint32(i)}, page(100, byte(i)))
	}
	// Touch page 0 so that page 1 is the least recently used.
	if d, ok := c.get(pageKey{1, 0}); !ok || d[0] != 0 {
		t.Fatalf("page 0 missing")
	}
	c.put(pageKey{id: 2, page: 0}, page(100, 9))
	if _, ok := c.get(pageKey{1, 1}); ok {
		t.Fatalf("least recently used page 1 survived")
	}
	for _, k := range []pageKey{{1, 0}, {1, 2}, {2, 0}} {
		if _, ok := c.get(k); !ok {
			t.Fatalf("page %v evicted, want kept", k)
		}
	}
	if b, n := c.size(); b != 300 || n != 3 {
		t.Fatalf("size = %d bytes, %d pages; want 300, 3", b, n)
	}
	// A short page and a replacement keep the byte count exact.
	c.put(pageKey{2, 0}, page(40, 7))
	if b, _ := c.size(); b != 240 {
		t.Fatalf("after replace: %d bytes, want 240", b)
	}
	// A page larger than the whole cache is not cached.
	c.put(pageKey{3, 0}, page(301, 1))
	if _, ok := c.get(pageKey{3, 0}); ok {
		t.Fatal("oversized page cached")
	}
	if c.hits.Load() == 0 || c.misses.Load() == 0 {
		t.Fatalf("counters not moving: hits %d misses %d", c.hits.Load(), c.misses.Load())
	}
}

func TestPageCacheEvictsManyForOneBigPage(t *testing.T) {
	c := newPageCache(1000)
	for i := 0; i < 10; i++ {
		c.put(pageKey{1, uint32(i)}, page(100, 1))
	}
	c.put(pageKey{2, 0}, page(550, 2))
	b, n := c.size()
	if b > 1000 || n != 5 {
		t.Fatalf("size = %d bytes, %d pages; want <= 1000 and 5 pages", b, n)
	}
	for i := 0; i < 5; i++ { // the five oldest went
		if c.contains(pageKey{1, uint32(i)}) {
			t.Fatalf("page %d should have been evicted first", i)
		}
	}
}

func TestPageCacheConcurrent(t *testing.T) {
	const limit = 64 * 10
	c := newPageCache(limit)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := pageKey{id: uint64(i % 37), page: uint32(g % 3)}
				if d, ok := c.get(k); ok {
					if len(d) != 64 || d[0] != byte(k.id) {
						t.Errorf("page %v has wrong content", k)
						return
					}
					continue
				}
				c.put(k, page(64, byte(k.id)))
				if b, _ := c.size(); b > limit {
					t.Errorf("cache holds %d bytes over its limit %d", b, limit)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b, n := c.size(); b > limit || n != int(b/64) {
		t.Fatalf("final size %d bytes, %d pages", b, n)
	}
}
