package chunkserver

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reelfs/reelfs/internal/wire"
)

// BenchmarkPut64K measures one PUT of a 64 KiB block as the store does it:
// write, fsync, rename, directory fsync and binlog append with its fsync.
func BenchmarkPut64K(b *testing.B) {
	ts := openBenchStore(b, 0)
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 64<<10)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ts.Put(ctx, uint64(i+1), data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBlocks are the 4 MiB blocks the read benchmarks seek in.
const benchBlocks = 8

// BenchmarkReadRange reads 64 KiB at a random offset of a 4 MiB block (a
// player's seek). "warm" has the block in the page cache; "cold" drops the
// file's pages (posix_fadvise DONTNEED) before each read, so the data and
// (unless cached in memory) the trailer come from the disk. "uncached"
// runs without the trailer cache (trailer, then data); "cached" with it.
func BenchmarkReadRange(b *testing.B) {
	for _, mode := range []string{"warm", "cold"} {
		for _, path := range []string{"uncached", "cached"} {
			b.Run(mode+"/"+path, func(b *testing.B) {
				cache := 0
				if path == "cached" {
					cache = 1024
				}
				ts := openBenchStore(b, cache)
				r := rand.New(rand.NewPCG(3, 4))
				for id := uint64(1); id <= benchBlocks; id++ {
					mustPutB(b, ts.DiskStore, id, randBytes(r, wire.MaxBlockSize))
				}
				buf := make([]byte, wire.MaxBlockSize)
				ctx := context.Background()
				const n = 64 << 10
				b.SetBytes(n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					id := uint64(i%benchBlocks + 1)
					off := r.Int64N(wire.MaxBlockSize - n)
					if mode == "cold" {
						b.StopTimer()
						dropCache(b, ts.Path(id))
						b.StartTimer()
					}
					pick := func(int64) (int64, int64, error) { return off, n, nil }
					if _, err := ts.ReadRange(ctx, id, pick, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func openBenchStore(b *testing.B, trailerCache int) *testStore {
	b.Helper()
	// The cold numbers mean something only where TMPDIR is on a disk
	// (not a tmpfs).
	dir := b.TempDir()
	blog, err := OpenBinlog(dir+"/binlog", BinlogOptions{Keep: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenDiskStore(context.Background(), dir, StoreOptions{Name: "bench@127.0.0.1:1", Changes: blog, TrailerCache: trailerCache})
	if err != nil {
		blog.Close()
		b.Fatal(err)
	}
	ts := &testStore{dir: dir, DiskStore: s, log: blog}
	b.Cleanup(func() {
		s.Close()
		blog.Close()
	})
	return ts
}

func mustPutB(b *testing.B, s *DiskStore, id uint64, data []byte) {
	b.Helper()
	if _, err := s.Put(context.Background(), id, data); err != nil {
		b.Fatal(err)
	}
}

// dropCache asks the kernel to forget the file's cached pages.
func dropCache(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}
