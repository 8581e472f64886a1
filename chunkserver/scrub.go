package chunkserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// scrubber re-reads every block at a bounded rate, checking it against
// its CRCs, and replaces a damaged copy with a good one from a peer. It
// also repairs blocks that a read found damaged (requestRepair).
type scrubber struct {
	s       *Server
	repairs chan uint64

	mu     sync.Mutex // guards report
	report wire.ScrubReport
}

func newScrubber(s *Server) *scrubber {
	return &scrubber{s: s, repairs: make(chan uint64, 1024)}
}

// requestRepair queues a block a read found damaged; when the queue is
// full the request is dropped (the scrubber's pass finds it later).
func (sc *scrubber) requestRepair(id uint64) {
	select {
	case sc.repairs <- id:
	default:
	}
}

func (sc *scrubber) snapshot() wire.ScrubReport {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.report
}

func (sc *scrubber) update(fn func(*wire.ScrubReport)) {
	sc.mu.Lock()
	fn(&sc.report)
	sc.mu.Unlock()
}

// run serves repair requests and, with Config.ScrubRate set, makes full
// passes over the store in id order at that rate, pausing
// Config.ScrubPause between passes, until ctx ends.
func (sc *scrubber) run(ctx context.Context) {
	var passDone <-chan struct{}
	if sc.s.cfg.ScrubRate > 0 {
		ch := make(chan struct{})
		passDone = ch
		go func() {
			defer close(ch)
			sc.passes(ctx)
		}()
	}
	for {
		select {
		case <-ctx.Done():
			if passDone != nil {
				<-passDone
			}
			return
		case id := <-sc.repairs:
			sc.repair(ctx, id, "a read found it damaged")
		}
	}
}

func (sc *scrubber) passes(ctx context.Context) {
	bufp := sc.s.bufs.Get().(*[]byte)
	defer sc.s.bufs.Put(bufp)
	for ctx.Err() == nil {
		pace := newPacer(sc.s.cfg.ScrubRate)
		var after uint64
		for ctx.Err() == nil {
			page, err := sc.s.store.List(ctx, after, 256, 0)
			if err != nil {
				if ctx.Err() == nil {
					sc.s.log.Warn("scrub: listing the store failed", "err", err)
				}
				break
			}
			for _, b := range page.Blocks {
				after = b.ID
				n, err := sc.s.store.Verify(ctx, b.ID, *bufp)
				switch {
				case err == nil:
				case errors.Is(err, wire.ErrNotFound): // deleted meanwhile
				case errors.Is(err, wire.ErrChecksum):
					sc.update(func(r *wire.ScrubReport) { r.Damaged++ })
					sc.s.metrics.scrubDamaged.Inc()
					sc.s.log.Error("scrub: block failed verification", "block", wire.BlockName(b.ID), "err", err)
					sc.repair(ctx, b.ID, "the scrubber found it damaged")
				default:
					if ctx.Err() == nil {
						sc.s.log.Warn("scrub: verify failed", "block", wire.BlockName(b.ID), "err", err)
					}
				}
				sc.update(func(r *wire.ScrubReport) { r.Checked++; r.Bytes += uint64(n) })
				sc.s.metrics.scrubBytes.Add(float64(n))
				if pace.wait(ctx, max(n, 1)) != nil {
					return
				}
			}
			if !page.More {
				now := time.Now().UnixNano()
				sc.update(func(r *wire.ScrubReport) { r.Passes++; r.LastPass = now })
				sc.s.metrics.scrubPasses.Inc()
				break
			}
		}
		t := time.NewTimer(sc.s.cfg.ScrubPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// repair replaces this member's copy of id with a good copy from a peer.
// The store's Put replaces a copy that fails its checksums and leaves a
// good one alone, so a repair of a block that is fine changes nothing.
func (sc *scrubber) repair(ctx context.Context, id uint64, why string) {
	// Several reads may report one damaged block; the first repair
	// serves them all.
	bufp := sc.s.bufs.Get().(*[]byte)
	_, verr := sc.s.store.Verify(ctx, id, *bufp)
	sc.s.bufs.Put(bufp)
	if verr == nil || errors.Is(verr, wire.ErrNotFound) {
		return
	}
	data, err := sc.s.fetchFromPeers(ctx, id, "")
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		sc.update(func(r *wire.ScrubReport) { r.Unrepairable++ })
		sc.s.metrics.repairs.WithLabelValues("unrepairable").Inc()
		sc.s.log.Error("repair: no member has a good copy", "block", wire.BlockName(id), "why", why, "err", err)
		return
	}
	if _, err := sc.s.store.Put(ctx, id, data); err != nil {
		sc.update(func(r *wire.ScrubReport) { r.Unrepairable++ })
		sc.s.metrics.repairs.WithLabelValues("unrepairable").Inc()
		sc.s.log.Error("repair: storing the good copy failed", "block", wire.BlockName(id), "why", why, "err", err)
		return
	}
	sc.update(func(r *wire.ScrubReport) { r.Repaired++ })
	sc.s.metrics.repairs.WithLabelValues("repaired").Inc()
	sc.s.log.Warn("repaired a damaged block from a peer", "block", wire.BlockName(id), "why", why)
}
