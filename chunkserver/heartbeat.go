package chunkserver

import (
	"context"
	"fmt"
	"slices"
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
	// While PUTs wait for their quorum, beat every kickEvery so the
	// tracker's decision (a dead follower leaving the in-sync set) reaches
	// them without waiting for the next regular beat.
	k := time.NewTicker(kickEvery)
	defer k.Stop()
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
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				break wait
			case <-s.kick:
				break wait
			case <-k.C:
				if s.followers.oldestWait(time.Now()) >= kickEvery {
					break wait
				}
			}
		}
	}
}

// kickEvery is the heartbeat period while PUTs wait for their quorum.
const kickEvery = 500 * time.Millisecond

// sendHeartbeat posts one wire.Heartbeat. It waits at most one interval
// (at least a second) so a hung tracker cannot delay the next beat.
func (s *Server) sendHeartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.cfg.HeartbeatEvery, time.Second))
	defer cancel()
	hb := wire.Heartbeat(s.member())
	var reply wire.HeartbeatReply
	if err := wire.CallLeader(ctx, s.hc, s.leaders, wire.PathMeta+wire.OpHeartbeat, s.cfg.Secret, "", hb, &reply); err != nil {
		return err
	}
	if reply.Group.ID != s.cfg.Group {
		return fmt.Errorf("tracker answered for group %d, we are in group %d", reply.Group.ID, s.cfg.Group)
	}
	if ok, err := s.fence.admit(reply.Epoch); err != nil {
		return err
	} else if !ok {
		return wire.Errorf(wire.ErrStaleEpoch, "tracker answered under epoch %d; epoch %d leads", reply.Epoch, s.fence.current())
	}
	old := s.followers.currentView()
	v := viewOf(reply.Group, s.id)
	s.followers.setView(v)
	if !old.known || !slices.Equal(old.isr, v.isr) || !slices.Equal(old.peers, v.peers) {
		if old.known {
			s.log.Info("group view changed", "isr", v.isr, "isr_version", v.version, "peers", len(v.peers))
		}
		s.shipper.viewChanged()
	}
	return nil
}
