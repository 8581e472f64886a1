package metaserver

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/syndtr/goleveldb/leveldb/util"
	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// Exactly-once changes. A client sends a change with a request id
// (wire.HeaderRequestID) and the same id on every retry. The txn of the
// change writes a marker for the id in the same batch, so the marker is in
// the op log with the change and survives a failover with it. A retry
// whose marker exists is answered without applying the change again.
// Markers expire after requestKeep, far longer than any client retries.

const (
	requestKeep   = 15 * time.Minute
	maxRequestID  = 96
	requestTrimAt = 4096 // markers expired per trim txn
)

type reqIDKey struct{}

// withRequestID attaches a request id to ctx (tests; the HTTP layer sets
// it as a user value of the request).
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, reqIDKey{}, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(reqIDKey{}).(string)
	return id
}

func keyRequest(id string) []byte { return append([]byte{pRequest}, id...) }

func keyReqTime(t int64, id string) []byte {
	k := make([]byte, 9, 9+len(id))
	k[0] = pReqTime
	binary.BigEndian.PutUint64(k[1:], uint64(t))
	return append(k, id...)
}

// tag makes the txn record ctx's request id with its change.
func (t *txn) tag(ctx context.Context) { t.req = requestID(ctx) }

// seen reports whether a change was made under request id.
func (c *core) seen(id string) bool {
	_, ok, err := getOpt(c.db, keyRequest(id))
	return ok && err == nil
}

// trimRequests drops expired request markers, oldest first.
func (c *core) trimRequests(now time.Time) (int, error) {
	limit := keyReqTime(now.Add(-requestKeep).UnixNano(), "")
	it := c.db.NewIterator(&util.Range{Start: []byte{pReqTime}, Limit: limit}, nil)
	var keys [][]byte
	for it.Next() && len(keys) < requestTrimAt {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	it.Release()
	if err := it.Error(); err != nil || len(keys) == 0 {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin("reqtrim")
	for _, k := range keys {
		t.b.Delete(k)
		if len(k) > 9 {
			t.b.Delete(keyRequest(string(k[9:])))
		}
	}
	if err := t.commit(); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// replay answers a retried change that already happened: what the first
// attempt answered, as far as it can be told now. Ops whose second
// application changes nothing (setattr, commit) run again instead.
func (s *Server) replay(rc *fasthttp.RequestCtx, op string) (any, bool, error) {
	c := s.core
	switch op {
	case wire.OpUnlink, wire.OpRmdir, wire.OpRename, wire.OpSetXattr, wire.OpRemoveXattr:
		return empty{}, true, nil
	case wire.OpCreate, wire.OpMkdir, wire.OpSymlink:
		var req wire.CreateReq
		if err := json.Unmarshal(rc.PostBody(), &req); err != nil {
			return nil, true, errInval("malformed request body: %v", err)
		}
		a, err := c.lookup(rc, &wire.LookupReq{Parent: req.Parent, Name: req.Name})
		return a, true, err
	case wire.OpLink:
		var req wire.LinkReq
		if err := json.Unmarshal(rc.PostBody(), &req); err != nil {
			return nil, true, errInval("malformed request body: %v", err)
		}
		a, err := c.lookup(rc, &wire.LookupReq{Parent: req.NewParent, Name: req.NewName})
		return a, true, err
	}
	return nil, false, nil
}

// runOp runs op once per request id: a retry of a change that happened
// (before the call, or while it ran: the first attempt may still have
// been in flight) gets the replayed answer.
func (s *Server) runOp(rc *fasthttp.RequestCtx, op *opEntry) (any, error) {
	id := string(rc.Request.Header.Peek(wire.HeaderRequestID))
	if id == "" {
		return op.handle(rc, rc)
	}
	if len(id) > maxRequestID {
		return nil, errInval("request id of %d bytes (at most %d)", len(id), maxRequestID)
	}
	rc.SetUserValue(reqIDKey{}, id)
	if s.core.seen(id) {
		if reply, ok, err := s.replay(rc, op.name); ok {
			s.metrics.replays.Inc()
			return reply, err
		}
	}
	reply, err := op.handle(rc, rc)
	if err != nil && (errors.Is(err, wire.ErrExist) || errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrNoAttr)) && s.core.seen(id) {
		if r, ok, rerr := s.replay(rc, op.name); ok {
			s.metrics.replays.Inc()
			return r, rerr
		}
	}
	return reply, err
}
