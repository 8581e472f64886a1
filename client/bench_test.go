package client

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCreate creates and closes empty files in one directory from 4
// goroutines (RunParallel with GOMAXPROCS*SetParallelism goroutines, set
// so that there are 4) and reports creates+closes per second.
func BenchmarkCreate(b *testing.B) {
	cl := newCluster(b, clusterOpts{})
	c := cl.client(nil)
	ctx := b.Context()
	dir, err := c.MkdirAll(ctx, "/bench", 0o755)
	if err != nil {
		b.Fatal(err)
	}
	procs := max(1, 4/runtime.GOMAXPROCS(0))
	b.SetParallelism(procs)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("f%d", seq.Add(1))
			f, err := c.Create(ctx, dir.Ino, name, 0o644, 0, 0, os.O_WRONLY|os.O_EXCL)
			if err != nil {
				b.Error(err)
				return
			}
			if err := f.Close(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
}

// BenchmarkPutGet writes a 256 MiB file, closes it, and reads it back
// through a second client with a cold cache; it reports MB/s of each.
func BenchmarkPutGet(b *testing.B) {
	const size = 256 << 20
	cl := newCluster(b, clusterOpts{})
	ctx := b.Context()
	buf := bytes.Repeat([]byte("reelfs-benchmark"), 1<<16) // 1 MiB
	b.SetBytes(2 * size)
	var putTime, getTime time.Duration
	for i := 0; i < b.N; i++ {
		w := cl.client(nil)
		path := fmt.Sprintf("/putget%d", i)
		t0 := time.Now()
		f, err := w.CreatePath(ctx, path, 0o644, os.O_WRONLY)
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.WriteAt(ctx, buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(ctx); err != nil {
			b.Fatal(err)
		}
		putTime += time.Since(t0)

		r := cl.client(nil)
		t1 := time.Now()
		g, err := r.OpenPath(ctx, path, os.O_RDONLY)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, g.IO(ctx), make([]byte, 1<<20))
		if err != nil || n != size {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		getTime += time.Since(t1)
		if err := g.Close(ctx); err != nil {
			b.Fatal(err)
		}
		w.Close()
		r.Close()
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/putTime.Seconds(), "put-MB/s")
	b.ReportMetric(mb/getTime.Seconds(), "get-MB/s")
}
