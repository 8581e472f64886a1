package httpd

import (
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"
)

// holdConns opens n keep-alive connections that each served one request.
func holdConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var held []net.Conn
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("GET /-/health HTTP/1.1\r\nHost: h\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("held connection %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	return held
}

// refusedWith dials addr and returns the status the server answers at
// accept, without a request (see the metaserver's flood test for why).
func refusedWith(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("connection past the limit: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Connections past Concurrency get 503, past MaxConnsPerIP 429, at once;
// the server serves again once connections close.
func TestConnectionLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Concurrency = 4; c.MaxConnsPerIP = 0 })
	addr := h.srv.Addr()
	held := holdConns(t, addr, 4)
	for i := 0; i < 20; i++ {
		if st := refusedWith(t, addr); st != http.StatusServiceUnavailable {
			t.Fatalf("connection past Concurrency: %d, want 503", st)
		}
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(h.base + "/-/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after the flood: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	h2 := newHarness(t, func(c *Config) { c.Concurrency = 16; c.MaxConnsPerIP = 3 })
	holdConns(t, h2.srv.Addr(), 3)
	if st := refusedWith(t, h2.srv.Addr()); st != http.StatusTooManyRequests {
		t.Fatalf("connection past MaxConnsPerIP: %d, want 429", st)
	}
}
