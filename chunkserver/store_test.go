package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// testStore is a DiskStore with its Binlog in one directory.
type testStore struct {
	dir string
	*DiskStore
	log *Binlog
}

func openTestStore(t *testing.T, dir string, reserve uint64) *testStore {
	t.Helper()
	blog, err := OpenBinlog(filepath.Join(dir, "binlog"), BinlogOptions{Keep: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenDiskStore(context.Background(), dir, StoreOptions{Name: "test@127.0.0.1:1", Reserve: reserve, Changes: blog, TrailerCache: 1024})
	if err != nil {
		blog.Close()
		t.Fatal(err)
	}
	ts := &testStore{dir: dir, DiskStore: s, log: blog}
	t.Cleanup(func() { ts.close(t) })
	return ts
}

func (ts *testStore) close(t *testing.T) {
	t.Helper()
	if err := ts.DiskStore.Close(); err != nil {
		t.Error(err)
	}
	if err := ts.log.Close(); err != nil {
		t.Error(err)
	}
}

// readAll reads a whole block through Open and ReadRange.
func readAll(ctx context.Context, s *DiskStore, id uint64) ([]byte, error) {
	b, err := s.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data, err := b.ReadRange(0, b.Size(), nil)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), data...), nil
}

func readRange(ctx context.Context, s *DiskStore, id uint64, off, n int64) ([]byte, error) {
	b, err := s.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.ReadRange(off, n, make([]byte, wire.MaxBlockSize))
}

func mustPut(t *testing.T, s *DiskStore, id uint64, data []byte) {
	t.Helper()
	created, err := s.Put(context.Background(), id, data)
	if err != nil || !created {
		t.Fatalf("put %x: created=%v err=%v", id, created, err)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	r := rand.New(rand.NewPCG(9, 10))
	sizes := []int{0, 1, 1000, wire.CRCBlock, wire.CRCBlock + 1, 5*wire.CRCBlock + 3, wire.MaxBlockSize}
	blocks := map[uint64][]byte{}
	var used uint64
	for i, n := range sizes {
		id := uint64(0x1000 + i*0x101)
		blocks[id] = randBytes(r, n)
		mustPut(t, ts.DiskStore, id, blocks[id])
		used += uint64(n)
	}
	if u := ts.Usage(); u.Blocks != uint64(len(sizes)) || u.Used != used {
		t.Fatalf("usage %+v, want %d blocks %d bytes", u, len(sizes), used)
	}
	for id, data := range blocks {
		got, err := readAll(ctx, ts.DiskStore, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %x: %d bytes, err %v", id, len(got), err)
		}
		info, err := ts.Stat(ctx, id)
		if err != nil || info.ID != id || int(info.Size) != len(data) || info.Mtime == 0 {
			t.Fatalf("stat %x: %+v %v", id, info, err)
		}
		if _, err := os.Stat(ts.Path(id)); err != nil {
			t.Fatalf("block file: %v", err)
		}
		if !strings.Contains(ts.Path(id), fmt.Sprintf("/blocks/%02x/%02x/%016x", byte(id), byte(id>>8), id)) {
			t.Fatalf("path %s does not follow blocks/XX/YY/id", ts.Path(id))
		}
		// Ranges at piece edges, inside pieces and spanning several.
		n := int64(len(data))
		for _, rg := range [][2]int64{{0, n}, {0, min(1, n)}, {n / 2, n - n/2}, {max(n-1, 0), min(1, n)},
			{min(wire.CRCBlock-1, n), min(2, max(n-wire.CRCBlock+1, 0))}, {min(100, n), min(3*wire.CRCBlock, n-min(100, n))}} {
			got, err := readRange(ctx, ts.DiskStore, id, rg[0], rg[1])
			if err != nil || !bytes.Equal(got, data[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("block %x range %v: err %v", id, rg, err)
			}
		}
	}
	// Out-of-range reads are EINVAL, not a panic.
	b, err := ts.Open(ctx, 0x1000+2*0x101)
	if err != nil {
		t.Fatal(err)
	}
	for _, rg := range [][2]int64{{-1, 1}, {0, 1001}, {1001, 0}, {500, -1}} {
		if _, err := b.ReadRange(rg[0], rg[1], nil); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("range %v: err %v, want EINVAL", rg, err)
		}
	}
	b.Close()

	for id := range blocks {
		if err := ts.Delete(ctx, id); err != nil {
			t.Fatalf("delete %x: %v", id, err)
		}
		if err := ts.Delete(ctx, id); !errors.Is(err, wire.ErrNotFound) {
			t.Fatalf("second delete %x: %v, want ENOENT", id, err)
		}
		if _, err := ts.Open(ctx, id); !errors.Is(err, wire.ErrNotFound) {
			t.Fatalf("open deleted %x: %v", id, err)
		}
		if _, err := ts.Stat(ctx, id); !errors.Is(err, wire.ErrNotFound) {
			t.Fatalf("stat deleted %x: %v", id, err)
		}
	}
	if u := ts.Usage(); u != (Usage{}) {
		t.Fatalf("usage after deleting everything: %+v", u)
	}
	// Every put and delete is in the binlog, in order.
	reply, err := ts.log.Read(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Entries) != 2*len(sizes) {
		t.Fatalf("binlog holds %d entries, want %d", len(reply.Entries), 2*len(sizes))
	}
	for i, e := range reply.Entries[:len(sizes)] {
		if e.Op != wire.BinlogPut || e.ID != uint64(0x1000+i*0x101) || int(e.Size) != sizes[i] || e.Seq != uint64(i+1) {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	for _, e := range reply.Entries[len(sizes):] {
		if e.Op != wire.BinlogDelete {
			t.Fatalf("entry %+v, want a delete", e)
		}
	}
}

func TestStorePutRules(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	data := bytes.Repeat([]byte("reelfs"), 30000)
	mustPut(t, ts.DiskStore, 7, data)
	seq := ts.log.Last()

	// A retry with identical bytes succeeds and changes nothing.
	created, err := ts.Put(ctx, 7, append([]byte(nil), data...))
	if err != nil || created {
		t.Fatalf("identical re-put: created=%v err=%v", created, err)
	}
	if ts.log.Last() != seq {
		t.Fatal("identical re-put wrote a binlog entry")
	}
	// Different bytes, same or other length: EEXIST, content unchanged.
	other := append([]byte(nil), data...)
	other[len(other)-1] ^= 1
	for _, d := range [][]byte{other, data[:100], append(append([]byte(nil), data...), 'x')} {
		if _, err := ts.Put(ctx, 7, d); !errors.Is(err, wire.ErrExist) {
			t.Fatalf("different content (%d bytes): err %v, want EEXIST", len(d), err)
		}
	}
	if got, err := readAll(ctx, ts.DiskStore, 7); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content after refused puts: %v", err)
	}
	// Bad ids and sizes.
	if _, err := ts.Put(ctx, 0, data); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("id 0: %v", err)
	}
	if _, err := ts.Put(ctx, 8, make([]byte, wire.MaxBlockSize+1)); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := os.Stat(ts.Path(8)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("oversized block was written")
	}
	if ts.log.Last() != seq {
		t.Fatal("refused puts wrote binlog entries")
	}
}

func TestStoreReserve(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 1<<62)
	_, err := ts.Put(ctx, 0x42, []byte("hello"))
	if !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("put with a huge reserve: %v, want NOSPACE", err)
	}
	if wire.HTTPStatus(wire.CodeOf(err)) != 507 {
		t.Fatalf("NOSPACE maps to %d", wire.HTTPStatus(wire.CodeOf(err)))
	}
	if _, err := os.Stat(ts.Path(0x42)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("block file exists after NOSPACE: %v", err)
	}
	if n := countFiles(t, filepath.Join(ts.dir, "blocks")); n != 0 {
		t.Fatalf("%d files left after NOSPACE", n)
	}
	if u := ts.Usage(); u != (Usage{}) || ts.log.Last() != 0 {
		t.Fatalf("usage %+v, binlog %d after NOSPACE", u, ts.log.Last())
	}
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoreDetectsDamage(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	r := rand.New(rand.NewPCG(11, 12))
	data := randBytes(r, 4*wire.CRCBlock+100)
	const id = 0xabcdef
	mustPut(t, ts.DiskStore, id, data)

	// Flip one byte in piece 2.
	const damaged = 2*wire.CRCBlock + 777
	flipByte(t, ts.Path(id), damaged)
	for _, rg := range [][2]int64{{damaged, 1}, {0, int64(len(data))}, {2*wire.CRCBlock - 10, 20}, {3*wire.CRCBlock - 1, 1}} {
		_, err := readRange(ctx, ts.DiskStore, id, rg[0], rg[1])
		if !errors.Is(err, wire.ErrChecksum) {
			t.Fatalf("range %v over the damaged piece: err %v, want CHECKSUM", rg, err)
		}
		msg := err.Error()
		for _, want := range []string{wire.BlockName(id), "test@127.0.0.1:1", fmt.Sprint(2 * wire.CRCBlock)} {
			if !strings.Contains(msg, want) {
				t.Fatalf("error %q does not name %q", msg, want)
			}
		}
	}
	// Ranges that avoid piece 2 still read correctly.
	for _, rg := range [][2]int64{{0, 2 * wire.CRCBlock}, {3 * wire.CRCBlock, int64(len(data)) - 3*wire.CRCBlock}, {wire.CRCBlock + 5, 10}} {
		got, err := readRange(ctx, ts.DiskStore, id, rg[0], rg[1])
		if err != nil || !bytes.Equal(got, data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v away from the damage: err %v", rg, err)
		}
	}
	// A retried PUT of the right bytes repairs the block.
	created, err := ts.Put(ctx, id, data)
	if err != nil || !created {
		t.Fatalf("repairing put: created=%v err=%v", created, err)
	}
	if got, err := readAll(ctx, ts.DiskStore, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %v", err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestStoreBadFiles(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	data := bytes.Repeat([]byte{0x5a}, 3*wire.CRCBlock)
	cases := map[string]func(path string) error{
		"truncated by one byte": func(p string) error { return os.Truncate(p, fileSizeFor(int64(len(data)))-1) },
		"truncated to the data": func(p string) error { return os.Truncate(p, int64(len(data))) },
		"empty":                 func(p string) error { return os.Truncate(p, 0) },
		"garbage":               func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("garbage!"), 5000), 0o644) },
		"crc table damaged":     func(p string) error { return flipAt(p, int64(len(data))+5) },
		"footer damaged":        func(p string) error { return flipAt(p, fileSizeFor(int64(len(data)))-3) },
		"grown":                 func(p string) error { return appendTo(p, []byte("x")) },
	}
	id := uint64(100)
	for name, damage := range cases {
		id++
		mustPut(t, ts.DiskStore, id, data)
		if err := damage(ts.Path(id)); err != nil {
			t.Fatal(err)
		}
		_, err := readAll(ctx, ts.DiskStore, id)
		if !errors.Is(err, wire.ErrChecksum) || !errors.Is(err, ErrTrailer) {
			t.Errorf("%s: err %v, want CHECKSUM and ErrTrailer", name, err)
			continue
		}
		if !strings.Contains(err.Error(), wire.BlockName(id)) {
			t.Errorf("%s: error %q does not name the block", name, err)
		}
	}
	// A store reopened over damaged files still starts and lists them.
	ts.close(t)
	ts2 := openTestStore(t, ts.dir, 0)
	list, err := ts2.List(ctx, 0, 100, 0)
	if err != nil || len(list.Blocks) != len(cases) {
		t.Fatalf("list after reopen: %d blocks, %v", len(list.Blocks), err)
	}
}

func flipAt(path string, off int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b[off] ^= 0xff
	return os.WriteFile(path, b, 0o644)
}

func appendTo(path string, extra []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(extra); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func TestStoreList(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	var ids []uint64
	for i := uint64(1); i <= 25; i++ {
		id := i * 0x10001 // spread over directories
		ids = append(ids, id)
		mustPut(t, ts.DiskStore, id, []byte(fmt.Sprint(i)))
	}
	var got []uint64
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		list, err := ts.List(ctx, after, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range list.Blocks {
			got = append(got, b.ID)
			if b.Size == 0 || b.Mtime == 0 {
				t.Fatalf("listed %+v", b)
			}
		}
		if !list.More {
			break
		}
		after = list.Blocks[len(list.Blocks)-1].ID
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	// A full last page does not claim more.
	if list, _ := ts.List(ctx, ids[19], 5, 0); len(list.Blocks) != 5 || list.More {
		t.Fatalf("last page: %d blocks, more=%v", len(list.Blocks), list.More)
	}
	// before filters by mtime: set two files' mtimes into the past.
	old := time.Now().Add(-time.Hour)
	for _, id := range []uint64{ids[3], ids[17]} {
		if err := os.Chtimes(ts.Path(id), old, old); err != nil {
			t.Fatal(err)
		}
	}
	ts.close(t) // the index takes mtimes from the files at start
	ts = openTestStore(t, ts.dir, 0)
	cut := time.Now().Add(-time.Minute).UnixNano()
	list, err := ts.List(ctx, 0, 1, cut)
	if err != nil || len(list.Blocks) != 1 || list.Blocks[0].ID != ids[3] || !list.More {
		t.Fatalf("before, page 1: %+v %v", list, err)
	}
	list, err = ts.List(ctx, ids[3], 1, cut)
	if err != nil || len(list.Blocks) != 1 || list.Blocks[0].ID != ids[17] || list.More {
		t.Fatalf("before, page 2: %+v %v", list, err)
	}
	if _, err := ts.List(ctx, 0, 0, 0); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("limit 0: %v", err)
	}
}

func TestStoreRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ts := openTestStore(t, dir, 0)
	r := rand.New(rand.NewPCG(13, 14))
	blocks := map[uint64][]byte{}
	for i := uint64(1); i <= 20; i++ {
		blocks[i] = randBytes(r, int(r.Uint32N(3*wire.CRCBlock)))
		mustPut(t, ts.DiskStore, i, blocks[i])
	}
	for i := uint64(1); i <= 5; i++ {
		if err := ts.Delete(ctx, i); err != nil {
			t.Fatal(err)
		}
		delete(blocks, i)
	}
	usage, seq := ts.Usage(), ts.log.Last()
	list, _ := ts.List(ctx, 0, 100, 0)
	// Leave a temp file as a crash during a write would.
	tmp := filepath.Join(filepath.Dir(ts.Path(9)), tempPrefix+wire.BlockName(9)+"-123")
	if err := os.WriteFile(tmp, []byte("half a block"), 0o644); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(filepath.Dir(ts.Path(9)), "notes.txt")
	if err := os.WriteFile(stray, []byte("an operator's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts.close(t)

	ts = openTestStore(t, dir, 0)
	if got := ts.Usage(); got != usage {
		t.Fatalf("usage after restart %+v, before %+v", got, usage)
	}
	if got := ts.log.Last(); got != seq {
		t.Fatalf("binlog seq after restart %d, before %d", got, seq)
	}
	if got, _ := ts.List(ctx, 0, 100, 0); fmt.Sprint(got) != fmt.Sprint(list) {
		t.Fatalf("list after restart %+v, before %+v", got, list)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file survived the restart: %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("a stray file was removed: %v", err)
	}
	for id, data := range blocks {
		if got, err := readAll(ctx, ts.DiskStore, id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("block %d after restart: %v", id, err)
		}
	}
	mustPut(t, ts.DiskStore, 99, []byte("after"))
	if got := ts.log.Last(); got != seq+1 {
		t.Fatalf("first seq after restart %d, want %d", got, seq+1)
	}
}

func TestStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	shared := bytes.Repeat([]byte("shared"), 20000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				id := uint64(1000 + w*100 + i)
				data := []byte(fmt.Sprintf("block %d", id))
				if _, err := ts.Put(ctx, id, data); err != nil {
					t.Error(err)
				}
				if got, err := readAll(ctx, ts.DiskStore, id); err != nil || !bytes.Equal(got, data) {
					t.Errorf("read back %d: %v", id, err)
				}
			}
			c, err := ts.Put(ctx, 1, shared)
			if err != nil {
				t.Error(err)
			}
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("the shared block was created %d times", created)
	}
	if u := ts.Usage(); u.Blocks != 81 {
		t.Fatalf("%d blocks", u.Blocks)
	}
	if ts.log.Last() != 81 {
		t.Fatalf("binlog at %d, want 81", ts.log.Last())
	}
}

func TestStoreClosed(t *testing.T) {
	ctx := context.Background()
	ts := openTestStore(t, t.TempDir(), 0)
	mustPut(t, ts.DiskStore, 1, []byte("x"))
	if err := ts.DiskStore.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Put(ctx, 2, []byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	if _, err := ts.Open(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("open after close: %v", err)
	}
	if err := ts.Delete(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("delete after close: %v", err)
	}
}
