package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Leaders is the metaserver address list of a client or daemon, with the
// current guess of the leader. One address is the embedded mode; with
// several (metaserver failover) a NOTLEADER answer names the leader, and
// an unreachable one moves the guess to the next address.
type Leaders struct {
	mu    sync.Mutex
	addrs []string
	cur   int
}

// ParseLeaders parses a comma-separated list of host:port.
func ParseLeaders(list string) (*Leaders, error) {
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("metaserver address %q: %v", a, err)
		}
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no metaserver address in %q", list)
	}
	return &Leaders{addrs: addrs}, nil
}

// Addr is the current guess of the leader's address.
func (l *Leaders) Addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[l.cur]
}

// All is every known address.
func (l *Leaders) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.addrs)
}

// Failed moves the guess after addr answered err: to the leader a
// NOTLEADER names (added to the list if new), else to the next address.
// It reports whether another address is worth trying at once.
func (l *Leaders) Failed(addr string, err error) bool {
	var we *Error
	hint := ""
	if errors.As(err, &we) && we.Code == CodeNotLeader {
		hint = we.Leader
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if hint != "" && hint != addr {
		i := slices.Index(l.addrs, hint)
		if i < 0 {
			l.addrs = append(l.addrs, hint)
			i = len(l.addrs) - 1
		}
		l.cur = i
		return true
	}
	if len(l.addrs) == 1 {
		return false
	}
	if l.addrs[l.cur] == addr {
		l.cur = (l.cur + 1) % len(l.addrs)
	}
	return true
}

// AttemptTimeout bounds one attempt of CallLeader when there are several
// metaservers. An answer normally takes milliseconds; the slowest waits
// for a follower that the leader drops from the in-sync set after its
// lag (2 s by default).
var AttemptTimeout = 5 * time.Second

// leaderFailure reports whether err means "try another metaserver".
func leaderFailure(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStaleEpoch)
}

// CallLeader is CallID to the leader: on NOTLEADER or an unreachable
// metaserver it tries the next guess, at most once per known address
// (plus one for a named leader), and returns the last error. Callers
// retry that with backoff, as any transient error.
func CallLeader(ctx context.Context, hc *fasthttp.Client, l *Leaders, path, secret, reqID string, req, resp any) error {
	all := l.All()
	tried := make(map[string]bool, len(all))
	var err error
	for range len(all) + 2 {
		addr := l.Addr()
		if tried[addr] {
			// A hint back to an address that already failed in this
			// call (a follower that has not heard of the new leader
			// yet): try one not asked yet instead.
			addr = ""
			for _, a := range l.All() {
				if !tried[a] {
					addr = a
					break
				}
			}
			if addr == "" {
				return err
			}
		}
		tried[addr] = true
		// One that does not answer soon may be stopped or cut off while
		// another leads: bound the attempt and try the next (the request
		// id makes the retry safe if the first attempt did happen).
		// With one address (the embedded mode) there is nothing else to
		// try: the attempt takes the caller's time.
		if len(all) == 1 {
			err = CallID(ctx, hc, addr, path, secret, reqID, req, resp)
		} else {
			actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
			err = CallID(actx, hc, addr, path, secret, reqID, req, resp)
			cancel()
		}
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			silent := Errorf(ErrUnavailable, "%s%s: no answer within %v", addr, path, AttemptTimeout)
			if ctx.Err() != nil {
				// The caller's time ran out on a silent metaserver: keep
				// its error, but move the guess so that the next call (a
				// heartbeat a second later) asks another.
				if len(all) > 1 {
					l.Failed(addr, silent)
				}
				return err
			}
			err = silent
		}
		if err == nil || !leaderFailure(err) {
			return err
		}
		if !l.Failed(addr, err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}
