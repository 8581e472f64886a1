package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"time"
)

// startPprof serves Go's profiler on addr when REELFS_PPROF names one, so
// that a CPU or heap profile can be taken of any running daemon:
//
//	REELFS_PPROF=127.0.0.1:6060 reelfs server
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
//
// It is off by default; the listener lives as long as the process.
func startPprof(addr string, stderr io.Writer) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("REELFS_PPROF: %w", err)
	}
	fmt.Fprintf(stderr, "pprof on http://%s/debug/pprof/\n", ln.Addr())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "pprof: %v\n", err)
		}
	}()
	return nil
}
