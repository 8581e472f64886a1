package metaserver

import (
	"context"
	"time"

	"github.com/reelfs/reelfs/consul"
)

// This file joins Consul's health checks to the tracker. With Consul
// configured, a chunkserver is healthy only while its heartbeat is fresh,
// it reports itself healthy, and Consul says its reelfs-chunk check
// passes; Consul's verdict is one more AND, never a replacement for the
// heartbeats, which carry the replication reports.

// consulRules bound how far the tracker trusts a view of Consul that may
// be old or incomplete, from Config.
type consulRules struct {
	// Stale: once the watch has failed this long without an answer (the
	// agent is down or unreachable), the tracker stops using Consul's last
	// view and judges by heartbeats only, so that a member that failed its
	// check before the outage is not kept out forever, and members that
	// recovered are not judged by a frozen set.
	Stale time.Duration
	// Grace: after the watch answers for the first time, or again after
	// failing, the tracker judges by heartbeats only for this long, or
	// until every member that heartbeats and reports itself healthy
	// passes its check, whichever comes first (graceOver). A restarted
	// agent has lost every registration; its daemons register again
	// within a few seconds (consul.Config.SyncInterval plus backoff plus
	// the first check), and until then their absence means nothing.
	Grace time.Duration
}

// consulView is what the tracker knows from Consul about chunkservers.
type consulView struct {
	on      bool            // Consul is configured
	heard   bool            // the watch has delivered a set at least once
	passing map[string]bool // member ids whose check passes, as of the last set
	// failingSince is when the watch first failed since its last answer;
	// zero while it answers.
	failingSince time.Time
	// trustFrom is when the current set starts to count: Grace after the
	// watch (re)connected.
	trustFrom time.Time
}

// consulHealthy says whether Consul lets member id count as healthy at
// now (the other conditions, heartbeat and self-report, are the
// tracker's), and whether the answer came from Consul's set (false: the
// tracker is judging by heartbeats only). The rules, in order:
//
//  1. Without Consul, or before the watch ever delivered a set, only
//     heartbeats count.
//  2. When the watch has failed for Stale, only heartbeats count: an
//     unreachable agent must not take every chunkserver out at once,
//     nor freeze the view forever.
//  3. Within Grace of the watch (re)connecting, only heartbeats count:
//     daemons are still registering again with a restarted agent. The
//     tracker ends the grace early (consulSet, graceOver) once every
//     member that heartbeats passes its check.
//  4. Otherwise the member is healthy only if its check passes.
//
// While the watch fails for less than Stale, the last set stays the
// view: a short outage changes nothing.
func consulHealthy(v consulView, id string, now time.Time, r consulRules) (ok, used bool) {
	switch {
	case !v.on || !v.heard:
		return true, false
	case !v.failingSince.IsZero() && now.Sub(v.failingSince) >= r.Stale:
		return true, false
	case now.Before(v.trustFrom):
		return true, false
	}
	return v.passing[id], true
}

// consulStatus records how a query of the watch went; it reports whether
// the view just fell back to heartbeats only (rule 2 took effect), for
// the log.
func (t *tracker) consulStatus(err error, now time.Time) (fellBack bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := &t.consul
	if err != nil {
		if v.failingSince.IsZero() {
			v.failingSince = now
			t.fellBack = false
		}
		if !t.fellBack && now.Sub(v.failingSince) >= t.crules.Stale {
			t.fellBack = true
			return v.heard
		}
		return false
	}
	if !v.failingSince.IsZero() || !v.heard {
		v.trustFrom = now.Add(t.crules.Grace)
	}
	v.failingSince = time.Time{}
	return false
}

// consulSet records the ids of the members whose check passes, at now,
// and ends a grace period early once graceOver says so.
func (t *tracker) consulSet(passing map[string]bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.consul.passing = passing
	t.consul.heard = true
	if now.Before(t.consul.trustFrom) {
		var alive []string
		for id, tm := range t.members {
			if tm.m.Healthy && !tm.beat.IsZero() && now.Sub(tm.beat) <= t.timeout {
				alive = append(alive, id)
			}
		}
		if graceOver(alive, passing) {
			t.consul.trustFrom = now
		}
	}
}

// graceOver reports whether a grace period may end before its time:
// every member that heartbeats and reports itself healthy (alive) passes
// its check, so Consul's set is complete and judging by it takes nobody
// out. While any is missing it may still be registering again.
func graceOver(alive []string, passing map[string]bool) bool {
	for _, id := range alive {
		if !passing[id] {
			return false
		}
	}
	return true
}

// watchConsul follows the healthy reelfs-chunk instances in Consul until
// ctx ends, keeps their member ids in the tracker and re-decides every
// group's in-sync set when the set changes, so a chunkserver whose check
// fails leaves placement and its in-sync set as soon as Consul says so.
// (The end of a grace period needs no wake-up: the in-sync loop of Run
// re-decides every second.) Server.Run owns it.
func (c *core) watchConsul(ctx context.Context, cc *consul.Client) error {
	status := func(err error) {
		if c.tracker.consulStatus(err, c.clock()) {
			c.log.Warn("Consul unreachable: judging chunkservers by heartbeats only until it answers again",
				"after", c.tracker.crules.Stale, "err", err)
		}
	}
	fn := func(in []consul.Instance) {
		passing := make(map[string]bool, len(in))
		for _, i := range in {
			if id := i.Meta[consul.MetaMember]; id != "" {
				passing[id] = true
			}
		}
		c.tracker.consulSet(passing, c.clock())
		c.log.Info("Consul: chunkservers whose checks pass", "n", len(passing))
		if err := c.refreshISR(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("in-sync sets after a Consul change", "err", err)
		}
	}
	err := cc.WatchHealthyStatus(ctx, consul.ServiceChunk, "", fn, status)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
