package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// source is a file of random bytes that benchmarks write from. Random
// content keeps compression and zero detection out of every figure.
type source struct {
	path string
	size int64
	sum  string // sha256, hex
}

// makeSource writes size deterministic random bytes to dir/name, leaves
// them in the page cache (the writers then read from memory, not from the
// disk under test) and syncs them so later write benchmarks do not pay for
// their writeback.
func (r *runner) makeSource(ctx context.Context, name string, size int64) (source, error) {
	p := filepath.Join(r.dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return source{}, err
	}
	var seed [32]byte
	copy(seed[:], "reelfs bench source "+name)
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			f.Close()
			return source{}, err
		}
		n := min(int64(len(buf)), left)
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return source{}, fmt.Errorf("write %s: %w", p, err)
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return source{}, err
	}
	if err := f.Close(); err != nil {
		return source{}, err
	}
	return source{path: p, size: size, sum: hex.EncodeToString(h.Sum(nil))}, nil
}

// warm reads the source so that it sits in the page cache: writers are
// measured on the destination, not on reading the source.
func (s source) warm() error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, f, make([]byte, 4<<20))
	return err
}

// at returns n bytes of the source at off.
func (s source) at(off int64, n int) ([]byte, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}

// equalAt checks that p is the source's content at off.
func (s source) equalAt(p []byte, off int64) error {
	want, err := s.at(off, len(p))
	if err != nil {
		return err
	}
	if !bytes.Equal(want, p) {
		return fmt.Errorf("content differs from the source at offset %d (+%d bytes)", off, len(p))
	}
	return nil
}

// ddRate runs dd with args, checks that it copied want bytes and returns
// the wall time of the whole command (fork to exit, like reelfs put/get).
func (r *runner) dd(ctx context.Context, want int64, args ...string) (time.Duration, error) {
	res, err := r.run(ctx, 10*time.Minute, nil, "dd", args...)
	if err != nil {
		return 0, err
	}
	// "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.9 s, 1.2 GB/s"
	for _, l := range strings.Split(res.stderr, "\n") {
		var n int64
		if _, err := fmt.Sscanf(l, "%d bytes", &n); err == nil && strings.Contains(l, "copied") {
			if n != want {
				return 0, fmt.Errorf("dd copied %d bytes, want %d", n, want)
			}
			return res.elapsed, nil
		}
	}
	return 0, fmt.Errorf("dd: no summary: %s", tail(res.stderr, 300))
}

// devNull opens /dev/null for writing; readers in the benchmarks write
// into it directly, like dd of=/dev/null.
func devNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) }

// fmtBytes names a size in binary units.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
