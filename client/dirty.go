package client

import "sync"

// dirtyGauge counts the bytes of all of one client's write buffers that
// are not uploaded yet (in memory or being uploaded), against
// Config.DirtyBytes. A writer reserves its bytes before it copies them in;
// the write buffers give them back as uploads finish or data is dropped.
type dirtyGauge struct {
	limit int64

	mu    sync.Mutex    // guards the fields below
	n     int64         // bytes reserved and not yet freed
	peak  int64         // the largest n so far (stats and tests)
	freed chan struct{} // closed and replaced whenever bytes are freed
}

func newDirtyGauge(limit int64) *dirtyGauge {
	return &dirtyGauge{limit: limit, freed: make(chan struct{})}
}

// tryReserve takes k bytes when they fit under the limit (or nothing is
// reserved at all, so one write always makes progress).
func (g *dirtyGauge) tryReserve(k int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n > 0 && g.n+k > g.limit {
		return false
	}
	g.n += k
	g.peak = max(g.peak, g.n)
	return true
}

// free gives k bytes back and wakes the writers waiting for room. A nil
// gauge (a write buffer used on its own, in tests) counts nothing.
func (g *dirtyGauge) free(k int64) {
	if g == nil || k <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n -= k
	close(g.freed)
	g.freed = make(chan struct{})
}

// wake returns a channel that is closed by the next free.
func (g *dirtyGauge) wake() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.freed
}

// load returns the bytes reserved now and the peak.
func (g *dirtyGauge) load() (n, peak int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n, g.peak
}
