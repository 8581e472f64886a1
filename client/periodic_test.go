package client

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// TestPeriodicCommitGrowsFileForOtherClients: a writer that never
// flushes commits what it wrote every CommitEvery; a reader in another
// client that opened the file before the writes sees size and bytes grow
// through that same File once it reads the attributes again.
func TestPeriodicCommitGrowsFileForOtherClients(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	w := cl.client(func(cfg *Config) { cfg.CommitEvery = 100 * time.Millisecond })
	r := cl.client(func(cfg *Config) { cfg.CommitEvery = 0 })
	ctx := t.Context()
	f := mustCreate(t, w, "/growing", os.O_WRONLY)
	writeAt(t, f, []byte("first line\n"), 0)
	mustClose(t, f) // committed: the reader opens a 11-byte file
	f = mustOpen(t, w, "/growing", os.O_WRONLY|os.O_APPEND)
	g := mustOpen(t, r, "/growing", os.O_RDONLY)
	want := []byte("first line\n")
	for i := range 5 {
		line := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
		line = append(line, '\n')
		writeAt(t, f, line, 0) // O_APPEND: goes to the end
		want = append(want, line...)
		eventually(t, "the reader to see the appended line", 10*time.Second, func() bool {
			a, err := r.GetAttr(ctx, g.Ino())
			return err == nil && a.Size == uint64(len(want))
		})
		if g.Size() != int64(len(want)) {
			t.Fatalf("line %d: the earlier File says size %d, attributes say %d", i, g.Size(), len(want))
		}
		got := make([]byte, len(want))
		if n, err := g.ReadAt(ctx, got, 0); n != len(want) || (err != nil && n != len(want)) {
			t.Fatalf("line %d: read %d of %d bytes: %v", i, n, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("line %d: the earlier File reads other bytes than were written", i)
		}
	}
	if s := w.Stats(); s.Periodic == 0 || s.PeriodicFails != 0 {
		t.Fatalf("periodic flushes %d, failed %d", s.Periodic, s.PeriodicFails)
	}
	mustClose(t, g)
	mustClose(t, f)
}

// TestPeriodicCommitOff: with CommitEvery 0 nothing a writer holds is
// committed before its flush (the writes stay under every threshold).
func TestPeriodicCommitOff(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	w := cl.client(func(cfg *Config) { cfg.CommitEvery = 0 })
	f := mustCreate(t, w, "/private", os.O_WRONLY)
	writeAt(t, f, []byte("not yet"), 0)
	before := w.Stats().Commits
	time.Sleep(300 * time.Millisecond)
	if s := w.Stats(); s.Commits != before || s.Periodic != 0 {
		t.Fatalf("commits %d -> %d, periodic %d with CommitEvery 0", before, s.Commits, s.Periodic)
	}
	a, err := cl.client(nil).Resolve(t.Context(), "/private")
	if err != nil || a.Size != 0 {
		t.Fatalf("other client sees size %d (%v) before the flush", a.Size, err)
	}
	mustClose(t, f)
}

// TestPeriodicCommitSpacing: a writer that writes without pause is not
// flushed back to back: each flush resets the age to the moment it
// started, so flushes come at most about every CommitEvery/2, and the
// file's bytes are whole at the end.
func TestPeriodicCommitSpacing(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	const every = 200 * time.Millisecond
	w := cl.client(func(cfg *Config) { cfg.CommitEvery = every })
	f := mustCreate(t, w, "/steady", os.O_WRONLY)
	data := randBytes(41, 64<<10)
	start := time.Now()
	var off int64
	for time.Since(start) < 2*time.Second && off < 1<<30 {
		writeAt(t, f, data, off)
		off += int64(len(data))
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	mustClose(t, f)
	p := w.Stats().Periodic
	if limit := int64(elapsed/(every/2)) + 2; p == 0 || p > limit {
		t.Fatalf("%d periodic flushes in %v (want 1..%d)", p, elapsed, limit)
	}
	g := mustOpen(t, cl.client(nil), "/steady", os.O_RDONLY)
	got := readAll(t, g)
	mustClose(t, g)
	if int64(len(got)) != off {
		t.Fatalf("read %d bytes, wrote %d", len(got), off)
	}
	for at := int64(0); at < off; at += int64(len(data)) {
		if !bytes.Equal(got[at:at+int64(len(data))], data) {
			t.Fatalf("bytes at %d differ", at)
		}
	}
}

// TestPeriodicCommitShowsOnlyWrittenBytes: while a writer streams without
// closing, every size another client sees is backed by the bytes written
// there: a commit of part of the writes never grows the file past what it
// commits, so a reader never reads zeros where data is still coming.
func TestPeriodicCommitShowsOnlyWrittenBytes(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	w := cl.client(func(cfg *Config) {
		cfg.CommitEvery = 100 * time.Millisecond
		cfg.BlockSize = 64 << 10
		cfg.WriteBuffer = 64 << 10
	})
	r := cl.client(func(cfg *Config) { cfg.CommitEvery = 0 })
	ctx := t.Context()
	data := randBytes(43, 24<<20)
	f := mustCreate(t, w, "/stream", os.O_WRONLY)
	g := mustOpen(t, r, "/stream", os.O_RDONLY)
	done := make(chan error, 1)
	go func() {
		var err error
		for off := 0; off < len(data) && err == nil; off += 40 << 10 { // not a block multiple: partial slices
			_, err = f.WriteAt(ctx, data[off:min(off+40<<10, len(data))], int64(off))
			time.Sleep(200 * time.Microsecond)
		}
		if err == nil {
			err = f.Close(ctx)
		}
		done <- err
	}()
	checks, grew := 0, 0
	var last uint64
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		a, err := r.GetAttr(ctx, g.Ino())
		if err != nil {
			t.Fatal(err)
		}
		if a.Size > last {
			grew++
			last = a.Size
		}
		got := make([]byte, a.Size)
		n, err := g.ReadAt(ctx, got, 0)
		if n != len(got) {
			t.Fatalf("size %d but %d bytes read: %v", a.Size, n, err)
		}
		if !bytes.Equal(got, data[:a.Size]) {
			i := 0
			for i < len(got) && got[i] == data[i] {
				i++
			}
			t.Fatalf("at size %d the reader sees other bytes than written from offset %d", a.Size, i)
		}
		checks++
		time.Sleep(20 * time.Millisecond)
	}
	if grew < 3 {
		t.Fatalf("the reader saw the file grow only %d times in %d checks", grew, checks)
	}
	t.Logf("%d checks, the file grew %d times as seen by the reader", checks, grew)
	mustClose(t, g)
}
