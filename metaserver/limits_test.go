package metaserver

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestConfigValidateLimits(t *testing.T) {
	ok := DefaultConfig()
	ok.Dir = "/tmp/x"
	for i, mut := range []func(*Config){
		func(c *Config) { c.Concurrency = 0 },
		func(c *Config) { c.Concurrency = 1<<20 + 1 },
		func(c *Config) { c.MaxConnsPerIP = -1 },
		func(c *Config) { c.MaxConnsPerIP = c.Concurrency + 1 },
		func(c *Config) { c.MaxRequestBody = 1 << 10 },
		func(c *Config) { c.MaxRequestBody = wire.MaxRPCBody + 1 },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
}

// getHealth sends one GET /v1/health on conn and returns the status.
func getHealth(conn net.Conn, r *bufio.Reader) (int, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET /v1/health HTTP/1.1\r\nHost: meta\r\n\r\n")); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A flood of connections past Concurrency is answered 503 at once, the
// connections being served are unaffected, and the server serves new
// ones normally once the flood is gone.
func TestConnectionFlood(t *testing.T) {
	const limit = 8
	ts := startServer(t, func(c *Config) { c.Concurrency = limit })
	addr := ts.s.Addr()

	// Fill every worker with a keep-alive connection.
	var held []net.Conn
	for i := 0; i < limit; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		if st, err := getHealth(conn, bufio.NewReader(conn)); err != nil || st != http.StatusOK {
			t.Fatalf("connection %d: %d, %v", i, st, err)
		}
	}

	const flood = 200
	var wg sync.WaitGroup
	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make(chan result, flood)
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer conn.Close()
			// A refused connection is answered at accept, before any
			// request: reading first keeps a request we sent from
			// turning the server's close into a reset that eats the 503.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			resp.Body.Close()
			results <- result{resp.StatusCode, time.Since(start), nil}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("flood connection: %v", r.err)
		case r.status != http.StatusServiceUnavailable:
			t.Fatalf("flood connection past the limit: status %d, want 503", r.status)
		case r.took > 2*time.Second:
			t.Fatalf("flood connection answered after %v", r.took)
		}
	}
	// The connections being served still work.
	if st, err := getHealth(held[0], bufio.NewReader(held[0])); err != nil || st != http.StatusOK {
		t.Fatalf("held connection after the flood: %d, %v", st, err)
	}
	for _, c := range held {
		c.Close()
	}
	// Freed workers serve new connections, metadata ops included.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st wire.StatFS
		err := ts.call(wire.OpStatFS, &struct{}{}, &st)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not serving after the flood: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
