package chunkserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func openTestBinlog(t *testing.T, dir string, keep int) *Binlog {
	t.Helper()
	b, err := OpenBinlog(dir, BinlogOptions{Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func appendN(t *testing.T, b *Binlog, n int, firstID uint64) {
	t.Helper()
	for i := 0; i < n; i++ {
		op := wire.BinlogPut
		if i%3 == 2 {
			op = wire.BinlogDelete
		}
		if _, err := b.Append(context.Background(), wire.BinlogEntry{Op: op, ID: firstID + uint64(i), Size: uint32(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestBinlogSeqSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openTestBinlog(t, dir, 1000) // 250 records per segment
	if b.Last() != 0 || b.First() != 1 {
		t.Fatalf("fresh binlog: first %d last %d", b.First(), b.Last())
	}
	appendN(t, b, 600, 1)
	if len(segmentFiles(t, dir)) != 3 {
		t.Fatalf("%d segments, want 3", len(segmentFiles(t, dir)))
	}
	b.Close()
	b = openTestBinlog(t, dir, 1000)
	if b.Last() != 600 || b.First() != 1 {
		t.Fatalf("after restart: first %d last %d", b.First(), b.Last())
	}
	seq, err := b.Append(ctx, wire.BinlogEntry{Op: wire.BinlogPut, ID: 9999})
	if err != nil || seq != 601 {
		t.Fatalf("append after restart: seq %d err %v", seq, err)
	}
	// Read pages across segment boundaries.
	var all []wire.BinlogEntry
	for from := uint64(1); ; {
		reply, err := b.Read(ctx, from, 97)
		if err != nil {
			t.Fatal(err)
		}
		if reply.First != 1 || reply.Last != 601 {
			t.Fatalf("reply first %d last %d", reply.First, reply.Last)
		}
		if len(reply.Entries) == 0 {
			break
		}
		all = append(all, reply.Entries...)
		from = reply.Entries[len(reply.Entries)-1].Seq + 1
	}
	if len(all) != 601 {
		t.Fatalf("read %d entries", len(all))
	}
	for i, e := range all[:600] {
		wantOp := wire.BinlogPut
		if i%3 == 2 {
			wantOp = wire.BinlogDelete
		}
		if e.Seq != uint64(i+1) || e.ID != uint64(i+1) || e.Op != wantOp || e.Size != uint32(i) || e.Time == 0 {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if _, err := b.Append(ctx, wire.BinlogEntry{Op: "nonsense", ID: 1}); !errors.Is(err, wire.ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
}

func TestBinlogTrim(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := openTestBinlog(t, dir, 4) // one record per segment
	appendN(t, b, 10, 1)
	if b.First() != 7 || b.Last() != 10 {
		t.Fatalf("first %d last %d, want 7 and 10", b.First(), b.Last())
	}
	reply, err := b.Read(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if reply.First != 7 || len(reply.Entries) != 4 || reply.Entries[0].Seq != 7 {
		t.Fatalf("read from a trimmed seq: %+v", reply)
	}
	if n := len(segmentFiles(t, dir)); n != 4 {
		t.Fatalf("%d segment files, want 4", n)
	}
	// Reopening with a smaller Keep trims at once; Last never goes back.
	b.Close()
	b = openTestBinlog(t, dir, 1)
	if b.First() != 10 || b.Last() != 10 {
		t.Fatalf("keep 1: first %d last %d", b.First(), b.Last())
	}
	appendN(t, b, 1, 50)
	if b.First() != 11 || b.Last() != 11 {
		t.Fatalf("keep 1 after append: first %d last %d", b.First(), b.Last())
	}
}

func TestBinlogTornTail(t *testing.T) {
	dir := t.TempDir()
	b := openTestBinlog(t, dir, 1000)
	appendN(t, b, 5, 1)
	b.Close()
	segs := segmentFiles(t, dir)
	seg := segs[len(segs)-1]
	// A torn record: half written.
	if err := appendTo(seg, make([]byte, recordLen/2)); err != nil {
		t.Fatal(err)
	}
	b = openTestBinlog(t, dir, 1000)
	if b.Last() != 5 {
		t.Fatalf("after a half record: last %d", b.Last())
	}
	appendN(t, b, 1, 6)
	b.Close()
	// A full-size record of zeros (what some file systems show after a
	// crash) is dropped too.
	if err := appendTo(seg, make([]byte, 2*recordLen)); err != nil {
		t.Fatal(err)
	}
	b = openTestBinlog(t, dir, 1000)
	if b.Last() != 6 {
		t.Fatalf("after zero records: last %d", b.Last())
	}
	reply, err := b.Read(context.Background(), 1, 100)
	if err != nil || len(reply.Entries) != 6 {
		t.Fatalf("read: %d entries, %v", len(reply.Entries), err)
	}
	fi, err := os.Stat(seg)
	if err != nil || fi.Size() != 6*recordLen {
		t.Fatalf("segment not truncated: %v %v", fi.Size(), err)
	}
	// Damage inside the log (not at the tail) keeps the seq and fails reads.
	b.Close()
	if err := flipAt(seg, 2*recordLen+10); err != nil {
		t.Fatal(err)
	}
	b = openTestBinlog(t, dir, 1000)
	if b.Last() != 6 {
		t.Fatalf("after inner damage: last %d", b.Last())
	}
	if _, err := b.Read(context.Background(), 1, 100); !errors.Is(err, wire.ErrIO) {
		t.Fatalf("read over a damaged record: %v", err)
	}
}

func TestBinlogGap(t *testing.T) {
	dir := t.TempDir()
	b := openTestBinlog(t, dir, 8) // two records per segment
	appendN(t, b, 8, 1)
	b.Close()
	segs := segmentFiles(t, dir)
	if len(segs) != 4 {
		t.Fatalf("%d segments", len(segs))
	}
	if err := os.Remove(segs[1]); err != nil { // records 3-4
		t.Fatal(err)
	}
	b = openTestBinlog(t, dir, 8)
	if b.First() != 5 || b.Last() != 8 {
		t.Fatalf("after a gap: first %d last %d, want 5 and 8", b.First(), b.Last())
	}
}

func TestBinlogWait(t *testing.T) {
	ctx := context.Background()
	b := openTestBinlog(t, t.TempDir(), 100)
	appendN(t, b, 3, 1)
	// An entry at or past from exists: no wait.
	if err := b.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// A wait that expires returns the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Wait(cctx, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	// A long-poll wakes on the next append.
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, 4) }()
	select {
	case err := <-done:
		t.Fatalf("wait for seq 4 returned before it existed: %v", err)
	default:
	}
	appendN(t, b, 1, 10)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Close wakes waiters with ErrClosed.
	go func() { done <- b.Wait(ctx, 100) }()
	b.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("wait across close: %v", err)
	}
	if _, err := b.Append(ctx, wire.BinlogEntry{Op: wire.BinlogPut, ID: 1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestBinlogConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	b := openTestBinlog(t, t.TempDir(), 40) // 10 per segment: many rolls
	var wg sync.WaitGroup
	seqs := make(chan uint64, 200)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				seq, err := b.Append(ctx, wire.BinlogEntry{Op: wire.BinlogPut, ID: uint64(w*100 + i)})
				if err != nil {
					t.Error(err)
					return
				}
				if b.Last() < seq {
					t.Errorf("Append(%d) returned before it was durable (last %d)", seq, b.Last())
				}
				seqs <- seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d assigned twice", s)
		}
		seen[s] = true
	}
	if len(seen) != 200 || b.Last() != 200 {
		t.Fatalf("%d seqs, last %d", len(seen), b.Last())
	}
	reply, err := b.Read(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Entries) < 40 || reply.Entries[len(reply.Entries)-1].Seq != 200 || reply.First != reply.Entries[0].Seq {
		t.Fatalf("after concurrent appends: first %d, %d entries", reply.First, len(reply.Entries))
	}
}
