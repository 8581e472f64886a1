package consul

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestWatchLoop drives the blocking-query loop with a scripted server: the
// index each query waits on, which results reach the callback, and how the
// loop recovers from an index that goes backwards, an index of 0, and an
// error.
func TestWatchLoop(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 2*time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errDown := errors.New("agent down")
	steps := []struct {
		wantWait uint64 // the WaitIndex the loop must send
		val      int    // what the server answers
		index    uint64 // X-Consul-Index
		err      error
	}{
		{0, 1, 10, nil},     // first read, delivered
		{10, 1, 10, nil},    // wait timed out without change: not delivered
		{10, 2, 12, nil},    // a change: delivered
		{12, 2, 5, nil},     // index went backwards (restore): same value, not delivered
		{0, 2, 0, nil},      // restarted from 0; the server answers 0
		{1, 3, 20, nil},     // 0 is never waited on: 1 instead; delivered
		{20, 0, 0, errDown}, // an error: back off, start over from 0
		{0, 3, 21, nil},     // the same value after the error: not delivered
		{21, 4, 22, nil},    // delivered
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	i := 0
	fetch := func(q *api.QueryOptions) (int, *api.QueryMeta, error) {
		if i == len(steps) {
			cancel()
			return 0, nil, ctx.Err()
		}
		s := steps[i]
		i++
		if q.WaitIndex != s.wantWait {
			t.Errorf("query %d waited on index %d, want %d", i, q.WaitIndex, s.wantWait)
		}
		if q.WaitTime != cfg.WaitTime {
			t.Errorf("query %d WaitTime = %v, want %v", i, q.WaitTime, cfg.WaitTime)
		}
		if s.err != nil {
			return 0, nil, s.err
		}
		return s.val, &api.QueryMeta{LastIndex: s.index}, nil
	}
	var got []int
	err = watch(ctx, c, "scripted", fetch, func(a, b int) bool { return a == b }, func(v int) { got = append(got, v) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("watch returned %v, want context.Canceled", err)
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("delivered %v, want [1 2 3 4]", got)
	}
}
