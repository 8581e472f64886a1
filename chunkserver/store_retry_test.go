package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// flakyLog is a ChangeLog whose sticky error a test sets.
type flakyLog struct {
	mu  sync.Mutex
	seq uint64
	err error
}

func (l *flakyLog) Append(_ context.Context, _ wire.BinlogEntry) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	l.seq++
	return l.seq, nil
}

func (l *flakyLog) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *flakyLog) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// A retried PUT of identical bytes is answered only after the block's
// directory is fsynced (the first attempt may have failed exactly there)
// and while the change log is healthy.
func TestStoreIdenticalRetrySyncsDirectory(t *testing.T) {
	ctx := context.Background()
	blog := &flakyLog{}
	s, err := OpenDiskStore(ctx, t.TempDir(), StoreOptions{Changes: blog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := bytes.Repeat([]byte("retry"), 20000)
	const id = 0x1234
	mustPut(t, s, id, data)

	var synced []string
	diskErr := errors.New("injected fsync failure")
	failSync := true
	s.dirSync = func(dir string) error {
		synced = append(synced, dir)
		if failSync {
			return diskErr
		}
		return syncDir(dir)
	}
	if _, err := s.Put(ctx, id, data); !errors.Is(err, diskErr) {
		t.Fatalf("identical retry with a failing directory fsync: err %v, want the fsync error", err)
	}
	if len(synced) != 1 || synced[0] != s.leafDir(id) {
		t.Fatalf("retry fsynced %q, want just %q", synced, s.leafDir(id))
	}

	failSync = false
	created, err := s.Put(ctx, id, data)
	if err != nil || created {
		t.Fatalf("identical retry: created=%v err=%v", created, err)
	}
	if len(synced) != 2 {
		t.Fatalf("second retry fsynced %d times in all, want 2", len(synced))
	}

	// A failed log refuses the retry too.
	blog.fail(ErrBinlogFailed)
	if _, err := s.Put(ctx, id, data); !errors.Is(err, ErrBinlogFailed) {
		t.Fatalf("identical retry with a failed log: err %v", err)
	}
}
