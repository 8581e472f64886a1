package chunkserver

import (
	"context"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// heartbeatLoop reports this server to the tracker at once and then every
// HeartbeatEvery until ctx is done. A failed heartbeat is retried on the
// next tick; only changes between reachable and unreachable are logged so
// a tracker outage does not flood the log.
func (s *Server) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	failing := false
	for {
		err := s.sendHeartbeat(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.log.Warn("heartbeat to tracker failed; retrying every interval", "meta", s.cfg.Meta, "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("heartbeat to tracker recovered", "meta", s.cfg.Meta)
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendHeartbeat posts one wire.Heartbeat. It waits at most one interval
// (at least a second) so a hung tracker cannot delay the next beat.
func (s *Server) sendHeartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.HeartbeatEvery, time.Second))
	defer cancel()
	hb := wire.Heartbeat(s.member())
	var reply struct{}
	return wire.Call(ctx, s.hc, s.cfg.Meta, wire.PathMeta+wire.OpHeartbeat, s.cfg.Secret, hb, &reply)
}
