package metaserver

import (
	"context"
	"sync"
	"sync/atomic"
)

// syncer is the group commit. A request that must be durable first writes
// its batch unsynced, then calls wait: wait joins the next sync round, and
// the syncer's one goroutine starts each round only after taking it, so a
// round's flush starts after every write of its waiters finished and covers
// them all. Waiters that arrive while a flush runs form the next round, so
// N concurrent syncs cost about two flushes, not N.
type syncer struct {
	flush func() error

	mu     sync.Mutex
	next   *syncRound // the round that the next flush serves; nil if none is waiting
	joined uint64     // wait calls so far
	closed bool

	kick    chan struct{} // buffered(1): a round is waiting
	quit    chan struct{}
	stopped chan struct{}

	flushes atomic.Uint64 // flushes performed, for metrics and tests
}

// requests is the number of wait calls so far.
func (s *syncer) requests() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined
}

// syncRound is one flush and everyone waiting for it.
type syncRound struct {
	done    chan struct{} // closed when the flush finished; err is set before
	err     error
	waiters int // guarded by syncer.mu until the round is taken
}

func newSyncer(flush func() error) *syncer {
	s := &syncer{
		flush:   flush,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go s.loop()
	return s
}

// wait returns once a flush that started after the call has finished. The
// caller's write must have completed before the call.
func (s *syncer) wait(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.next == nil {
		s.next = &syncRound{done: make(chan struct{})}
	}
	r := s.next
	r.waiters++
	s.joined++
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default: // a kick is already pending; the loop will take our round
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *syncer) loop() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.quit:
			s.mu.Lock()
			r := s.next
			s.next = nil
			s.mu.Unlock()
			if r != nil {
				r.err = ErrClosed
				close(r.done)
			}
			return
		}
		s.mu.Lock()
		r := s.next
		s.next = nil
		s.mu.Unlock()
		if r == nil {
			continue
		}
		r.err = s.flush()
		s.flushes.Add(1)
		close(r.done)
	}
}

// close stops the loop after the flush in progress, failing waiters that
// no flush will serve. Idempotent.
func (s *syncer) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.stopped
}
