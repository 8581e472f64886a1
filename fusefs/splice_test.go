package fusefs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedLog collects log output from the FUSE server's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLargeReadsTrySpliceNothing reads a file in 1 MiB requests through
// the mount and checks that no read tried a splice: the replies are bytes
// in memory, and a 1 MiB reply plus its header never fit the pipe
// (go-fuse logged "trySplice: splice: want 1052688 bytes, max pipe size
// 1048576" for each, at Info).
func TestLargeReadsTrySpliceNothing(t *testing.T) {
	needFUSE(t)
	cl := startCluster(t, 1, 1<<20)
	c := newClient(t, cl)
	ctx := context.Background()
	// written through the SDK, so the kernel has no page of it cached
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16+100) // 3 MiB + 1600
	f, err := c.CreatePath(ctx, "/big", 0o644, os.O_WRONLY|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}

	var log lockedLog
	dir := t.TempDir()
	opt := DefaultOptions()
	opt.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := Mount(mctx, c, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		m.Wait()
	})
	for _, flags := range []int{os.O_RDONLY, os.O_RDONLY | 0o40000 /* O_DIRECT: each read is one request */} {
		r, err := os.OpenFile(filepath.Join(dir, "big"), flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		buf := make([]byte, 1<<20)
		_, err = io.CopyBuffer(&got, struct{ io.Reader }{r}, buf)
		r.Close()
		if err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("read through the mount (flags %o): %v, %d bytes, want %d", flags, err, got.Len(), len(data))
		}
	}
	if strings.Contains(log.String(), "trySplice") {
		t.Fatalf("reads tried a splice:\n%s", log.String())
	}
}
