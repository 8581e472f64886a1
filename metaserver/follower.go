package metaserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// fetcher is a follower's side of op-log shipping: it finds the leader in
// Consul KV, checks its own log against the leader's epoch history
// (truncating by snapshot resync when it holds entries the leader never
// acknowledged), then long-polls the leader's log and applies it. Each
// fetch names the next seq it needs: that is its acknowledgement of every
// entry below.
type fetcher struct {
	h  *ha
	hc *fasthttp.Client
}

const (
	fetchWait     = 2 * time.Second
	fetchMaxBytes = 4 << 20
	fetchMaxItems = 4096
)

func newFetcher(h *ha) *fetcher {
	return &fetcher{h: h, hc: &fasthttp.Client{
		Name:                "reelfs-meta-follower",
		MaxConnsPerHost:     4,
		ReadTimeout:         fetchWait + 10*time.Second,
		WriteTimeout:        10 * time.Second,
		MaxResponseBodySize: 1 << 30,
	}}
}

// run follows whoever leads until ctx ends.
func (f *fetcher) run(ctx context.Context) {
	h := f.h
	var index uint64
	failures := 0
	lastErr := ""
	for ctx.Err() == nil {
		var st haState
		e, err := h.cc.WaitJSON(ctx, h.key, index, &st)
		if err != nil {
			index = 0
			if ctx.Err() == nil {
				h.log.Debug("follower: read state", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		if !e.Found || st.Leader == "" || st.LeaderID == h.self {
			// Nobody to follow yet (or the record names this node, which
			// does not hold the lock: a leader that lost it). Wait for a
			// change.
			index = e.Index
			continue
		}
		h.mu.Lock()
		h.epoch, h.leaderAddr = st.Epoch, st.Leader
		h.mu.Unlock()
		// Stop following as soon as Consul names another leader: a
		// stopped (not dead) leader would hold a fetch for its whole wait.
		fctx, cancel := context.WithCancel(ctx)
		go f.watchState(fctx, cancel, st, e.Index)
		err = f.follow(fctx, st)
		cancel()
		index = 0
		if ctx.Err() != nil {
			return
		}
		failures++
		if msg := fmt.Sprint(err); msg != lastErr {
			h.log.Info("follower: following stopped; looking for the leader again", "leader", st.Leader, "epoch", st.Epoch, "err", err)
			lastErr = msg
		}
		sleepCtx(ctx, min(time.Duration(failures)*50*time.Millisecond, time.Second))
	}
}

// watchState cancels the follow of st when the state record names
// another epoch or leader.
func (f *fetcher) watchState(ctx context.Context, cancel context.CancelFunc, st haState, index uint64) {
	for ctx.Err() == nil {
		var now haState
		e, err := f.h.cc.WaitJSON(ctx, f.h.key, index, &now)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		index = e.Index
		if !e.Found || now.Epoch != st.Epoch || now.Leader != st.Leader {
			cancel()
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// epochsReply is the leader's answer to PathOpLogEpoch.
type epochsReply struct {
	Epoch   uint64       `json:"epoch"`
	First   uint64       `json:"first"` // oldest op-log seq it still stores
	Last    uint64       `json:"last"`
	History []epochStart `json:"history"`
}

// follow checks this member against leader st and applies its log until
// an error (the leader changed, died, or refused).
func (f *fetcher) follow(ctx context.Context, st haState) error {
	h := f.h
	var er epochsReply
	if err := f.get(ctx, st.Leader, wire.PathOpLogEpoch+"?epoch="+strconv.FormatUint(st.Epoch, 10), &er); err != nil {
		return err
	}
	if er.Epoch != st.Epoch {
		return fmt.Errorf("%w: leader answers epoch %d, Consul says %d", wire.ErrStaleEpoch, er.Epoch, st.Epoch)
	}
	hist, err := epochHistory(h.c.db)
	if err != nil {
		return err
	}
	last := h.c.lastSeq()
	keep, ok := truncateTo(last, lastEpoch(hist), er.History, er.Last)
	switch {
	case h.c.resyncing():
		err = f.resync(ctx, st, "an earlier resync did not finish")
	case !ok:
		err = f.resync(ctx, st, fmt.Sprintf("the leader's epoch history does not reach back to this member's epoch %d", lastEpoch(hist)))
	case keep < last:
		// Entries past keep were never acknowledged. The log is physical
		// (batches, not inverse operations), so they cannot be undone in
		// place: replace the database with the leader's.
		err = f.resync(ctx, st, fmt.Sprintf("entries %d..%d were written under an epoch the leader ended at %d", keep+1, last, keep))
	case last+1 < er.First:
		err = f.resync(ctx, st, fmt.Sprintf("the leader trimmed its log to %d; this member is at %d", er.First, last))
	}
	if err != nil {
		return err
	}
	h.log.Info("following", "leader", st.Leader, "epoch", st.Epoch, "from", h.c.lastSeq()+1)
	for ctx.Err() == nil {
		from := h.c.lastSeq() + 1
		q := url.Values{}
		q.Set("from", strconv.FormatUint(from, 10))
		q.Set("wait", fetchWait.String())
		q.Set("member", h.self)
		q.Set("addr", h.addr)
		q.Set("epoch", strconv.FormatUint(st.Epoch, 10))
		body, hdr, err := f.raw(ctx, st.Leader, wire.PathOpLog+"?"+q.Encode())
		if err != nil {
			return err
		}
		if e, _ := strconv.ParseUint(hdr, 10, 64); e != st.Epoch {
			return fmt.Errorf("%w: fetch answered under epoch %s, following %d", wire.ErrStaleEpoch, hdr, st.Epoch)
		}
		rs, err := decodeRecords(body)
		if err != nil {
			return err
		}
		if len(rs) > 0 && rs[0].Seq != from {
			return fmt.Errorf("%w: asked for %d, got %d", ErrCorrupt, from, rs[0].Seq)
		}
		if err := h.c.applyLog(rs); err != nil {
			if errors.Is(err, ErrCorrupt) {
				// The local log does not continue where the leader's
				// does: never paper over it, take the leader's state.
				return f.resync(ctx, st, err.Error())
			}
			return err
		}
	}
	return ctx.Err()
}

// resync replaces this member's database with a snapshot of the leader's.
func (f *fetcher) resync(ctx context.Context, st haState, why string) error {
	h := f.h
	h.log.Warn("resyncing from a snapshot of the leader", "leader", st.Leader, "epoch", st.Epoch, "why", why)
	start := time.Now()
	body, _, err := f.raw(ctx, st.Leader, wire.PathOpLogSnap+"?epoch="+strconv.FormatUint(st.Epoch, 10))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	seq, err := h.c.installSnapshot(body)
	if err != nil {
		return fmt.Errorf("install snapshot: %w", err)
	}
	h.log.Info("resynced", "seq", seq, "bytes", len(body), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// leave tells the leader this member is shutting down, so it leaves the
// in-sync set at once (answers stop waiting for it) and is no longer
// listed as a follower out of sync. Best effort, within a second: a
// leader that does not hear it drops the member after --ha-lag anyway.
func (f *fetcher) leave() {
	h := f.h
	h.mu.Lock()
	addr, epoch := h.leaderAddr, h.epoch
	h.mu.Unlock()
	if addr == "" || addr == h.addr {
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.PathOpLogLeave + "?epoch=" + strconv.FormatUint(epoch, 10) +
		"&member=" + url.QueryEscape(h.self))
	req.Header.SetMethod(fasthttp.MethodPost)
	wire.SetAuth(req, h.secret)
	err := f.hc.DoTimeout(req, resp, time.Second)
	if err == nil && resp.StatusCode() != fasthttp.StatusNoContent {
		err = wire.ErrorFromResponse(resp)
	}
	if err != nil {
		h.log.Info("could not tell the leader this member is shutting down; it drops it after --ha-lag", "leader", addr, "err", err)
		return
	}
	h.log.Info("told the leader this member is shutting down", "leader", addr, "epoch", epoch)
}

// get is a GET of a JSON reply from the leader.
func (f *fetcher) get(ctx context.Context, addr, path string, v any) error {
	body, _, err := f.raw(ctx, addr, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return nil
}

// raw GETs path from addr, returning the body (copied) and the epoch
// header of the answer.
func (f *fetcher) raw(ctx context.Context, addr, path string) ([]byte, string, error) {
	// Not pooled: a cancelled fetch is abandoned to finish on its own (a
	// stopped leader may hold it for the whole wait), and promotion must
	// not wait for it.
	req := &fasthttp.Request{}
	resp := &fasthttp.Response{}
	req.SetRequestURI("http://" + addr + path)
	req.Header.SetMethod(fasthttp.MethodGet)
	wire.SetAuth(req, f.h.secret)
	timeout := fetchWait + 10*time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	done := make(chan error, 1)
	go func() { done <- f.hc.DoTimeout(req, resp, timeout) }()
	select {
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case err := <-done:
		if err != nil {
			return nil, "", wire.Errorf(wire.ErrUnavailable, "%s%s: %v", addr, path, err)
		}
	}
	if resp.StatusCode()/100 != 2 {
		return nil, "", wire.ErrorFromResponse(resp)
	}
	return append([]byte(nil), resp.Body()...), string(resp.Header.Peek(headerEpoch)), nil
}

// headerEpoch carries the leader's epoch on op-log answers.
const headerEpoch = wire.HeaderEpoch
