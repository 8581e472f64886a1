package chunkserver

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

func getStatus(conn net.Conn, r *bufio.Reader) (int, error) {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: cs\r\n\r\n")); err != nil {
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
// connections being served keep working, and the server serves new ones
// once the flood is gone: a flood cannot make it hold more than
// Concurrency request bodies.
func TestConnectionFlood(t *testing.T) {
	cfg := testConfig(t)
	cfg.Concurrency = 8
	ts := startServer(t, cfg)
	var held []net.Conn
	for i := 0; i < cfg.Concurrency; i++ {
		conn, err := net.Dial("tcp", ts.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		if st, err := getStatus(conn, bufio.NewReader(conn)); err != nil || st != http.StatusOK {
			t.Fatalf("connection %d: %d, %v", i, st, err)
		}
	}
	const flood = 100
	var wg sync.WaitGroup
	statuses := make(chan int, flood)
	for i := 0; i < flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", ts.Addr())
			if err != nil {
				statuses <- -1
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				statuses <- -2
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusServiceUnavailable {
			t.Fatalf("connection past the limit: status %d, want 503", st)
		}
	}
	if st, err := getStatus(held[0], bufio.NewReader(held[0])); err != nil || st != http.StatusOK {
		t.Fatalf("held connection after the flood: %d, %v", st, err)
	}
	for _, c := range held {
		c.Close()
	}
	waitFor(t, func() bool {
		conn, err := net.Dial("tcp", ts.Addr())
		if err != nil {
			return false
		}
		defer conn.Close()
		st, err := getStatus(conn, bufio.NewReader(conn))
		return err == nil && st == http.StatusOK
	})
}
