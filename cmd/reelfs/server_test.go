package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerAccessLog: the all-in-one server's httpd logs each request
// by default and not with --access-log=false, like reelfs httpd.
func TestServerAccessLog(t *testing.T) {
	for _, tt := range []struct {
		flags []string
		want  bool
	}{
		{nil, true},
		{[]string{"--access-log=false"}, false},
	} {
		var stdout, stderr syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		args := append([]string{"server", "--dir", t.TempDir(), "--meta-listen", "127.0.0.1:0",
			"--chunk-listen", "127.0.0.1:0,127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--live-listen", ""}, tt.flags...)
		done := make(chan int, 1)
		go func() { done <- run(ctx, args, nil, &stdout, &stderr, func(string) string { return "" }) }()
		url := regexp.MustCompile(`http +(http://\S+/) `)
		var base string
		for deadline := time.Now().Add(60 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
			if m := url.FindStringSubmatch(stdout.String()); m != nil {
				base = m[1]
			} else if time.Now().After(deadline) {
				cancel()
				t.Fatalf("server did not start: %s\n%s", stdout.String(), stderr.String())
			}
		}
		resp, err := http.Get(base + "?marker=" + strings.Join(tt.flags, ""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		time.Sleep(100 * time.Millisecond) // the log line follows the answer
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("server %v exited %d: %s", tt.flags, code, stderr.String())
		}
		logged := strings.Contains(stderr.String(), "msg=access")
		if logged != tt.want {
			t.Errorf("server %v: access logged %v, want %v:\n%s", tt.flags, logged, tt.want, stderr.String())
		}
	}
}
