package metaserver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// TestBackupRestore: a backup restores into a fresh directory with the
// namespace it held, counters past the old ones and (with failover) an
// epoch past the backup's; a damaged, truncated or misplaced restore is
// refused.
func TestBackupRestore(t *testing.T) {
	c, _ := newTestCore(t)
	d := mkdir(t, c, wire.RootIno, "films")
	mkdir(t, c, d.Ino, "2026")
	data, seq, err := c.backup(7)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := CheckBackup(data)
	if err != nil || info.Seq != seq || info.Epoch != 7 || info.Bytes != len(data) {
		t.Fatalf("CheckBackup: %+v, %v (seq %d)", info, err, seq)
	}
	mkdir(t, c, wire.RootIno, "after") // not in the backup
	c.mu.Lock()
	old := c.ctr
	c.mu.Unlock()

	damaged := append([]byte(nil), data...)
	damaged[len(damaged)/2] ^= 1
	for name, bad := range map[string][]byte{
		"damaged":   damaged,
		"truncated": data[:len(data)-1],
		"cut":       data[:len(data)/2],
		"empty":     nil,
	} {
		dir := t.TempDir()
		if _, err := Restore(dir, bad, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s backup: %v, want ErrCorrupt", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "meta")); err == nil {
			t.Errorf("%s backup: a database was written", name)
		}
	}

	dir := t.TempDir()
	if _, err := Restore(dir, data, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(dir, data, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a used directory: %v, want ErrNotEmpty", err)
	}
	r, _ := openTestCore(t, dir)
	films := lookupIno(t, r, wire.RootIno, "films")
	if films != d.Ino {
		t.Fatalf("films is inode %d after restore, was %d", films, d.Ino)
	}
	lookupIno(t, r, films, "2026")
	if ino, err := lookupDentry(r.db, wire.RootIno, "after"); ino != 0 || err != nil {
		t.Fatalf("a directory made after the backup: inode %d, %v", ino, err)
	}
	r.mu.Lock()
	got := r.ctr
	r.mu.Unlock()
	if got.nextBlock < old.nextBlock+restoreBlockJump-1 || got.nextIno < old.nextIno+restoreInoJump-1 || got.seq != seq+1 {
		t.Fatalf("counters after restore %+v; before the backup's source moved on %+v (backup seq %d)", got, old, seq)
	}
	hist, err := epochHistory(r.db)
	if err != nil || lastEpoch(hist) != 7+restoreEpochJump {
		t.Fatalf("epoch history after restore: %+v, %v", hist, err)
	}
	// The restored metaserver writes on as usual, on new inodes.
	a := mkdir(t, r, wire.RootIno, "new")
	if a.Ino <= old.nextIno {
		t.Fatalf("new inode %d not past %d", a.Ino, old.nextIno)
	}
}
