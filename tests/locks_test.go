package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// twoMounts starts a metaserver (session TTL 10 s), a group of two
// chunkservers and two separate `reelfs mount` processes of the cluster,
// as two machines would mount it.
func twoMounts(t *testing.T) (*group, *mountProc, *mountProc) {
	needFUSE(t)
	dir := t.TempDir()
	meta := freeAddr(t)
	mp := startProc(t, "meta", "--dir", filepath.Join(dir, "meta"), "--listen", meta, "--session-ttl", "10s")
	t.Cleanup(func() { mp.stop(t, 30*time.Second) })
	g := &group{t: t, dir: dir, meta: meta}
	g.startMembers(2)
	g.waitInSync(2, 60*time.Second)
	c := &cluster{t: t, meta: meta}
	a := startMount(t, c, filepath.Join(dir, "a"))
	b := startMount(t, c, filepath.Join(dir, "b"))
	return g, a, b
}

// TestLocksAcrossMountProcesses: flock(1) on one mount excludes the
// other; a blocking flock waits for the holder; when the holder's mount
// is killed -9 its locks go once its session expires.
func TestLocksAcrossMountProcesses(t *testing.T) {
	_, a, b := twoMounts(t)
	if err := os.WriteFile(filepath.Join(a.dir, "lockfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fa, fb := filepath.Join(a.dir, "lockfile"), filepath.Join(b.dir, "lockfile")
	// -o: the lock stays with flock itself, not with the sleep it runs.
	holder := exec.Command("flock", "-o", "-x", fa, "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	eventually(t, 10*time.Second, "flock -n on mount B refused while A holds it", func() bool {
		return exec.Command("flock", "-n", "-s", fb, "true").Run() != nil
	})
	// A blocking flock on B returns when A's holder ends.
	waiter := exec.Command("flock", "-x", fb, "true")
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	holder.Process.Kill()
	holder.Wait()
	done := make(chan error, 1)
	go func() { done <- waiter.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocking flock on B: %v", err)
		}
	case <-time.After(20 * time.Second):
		waiter.Process.Kill()
		t.Fatal("blocking flock on B not granted after A's holder exited")
	}

	// The holder's whole mount dies: its session expires (10 s here) and
	// the reaper releases its locks.
	holder = exec.Command("flock", "-o", "-x", fa, "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A holds the lock again", func() bool {
		return exec.Command("flock", "-n", fb, "true").Run() != nil
	})
	a.kill()
	killed := time.Now()
	eventually(t, 40*time.Second, "the dead mount's lock released", func() bool {
		return exec.Command("flock", "-n", fb, "true").Run() == nil
	})
	t.Logf("lock of a mount killed -9 released after %v (session TTL 10 s)", time.Since(killed).Round(100*time.Millisecond))
	holder.Process.Kill()
	holder.Wait()
	exec.Command("fusermount3", "-u", "-z", a.dir).Run()
}

// TestSQLiteTwoMounts: one SQLite writer on each mount of one database
// file, with SQLite's default rollback journal: every row of both
// writers is there and PRAGMA integrity_check is ok, read through either
// mount. The locks are the metaserver's; the bytes are consistent
// because each granted lock refreshes the file from the cluster.
func TestSQLiteTwoMounts(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 missing: run scripts/deps.sh")
	}
	_, a, b := twoMounts(t)
	// Rollback journals, and WAL with EXCLUSIVE locking. Shared-memory
	// WAL cannot work: its index is the mmapped -shm file, which each
	// mount's page cache holds apart, as it would across NFS clients
	// (SQLite supports it on one host only). With locking_mode=EXCLUSIVE
	// SQLite keeps the index in the connection's own memory and holds the
	// database lock (the metaserver's) until the connection closes, so
	// writers on two machines take turns. See docs/operations.md, "Locks".
	for _, mode := range []string{"delete", "truncate", "wal"} {
		t.Run(mode, func(t *testing.T) {
			db := "db-" + mode + ".sqlite"
			pragma := fmt.Sprintf("PRAGMA journal_mode=%s;", mode)
			if mode == "wal" {
				pragma = "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
			}
			out, err := exec.Command("sqlite3", filepath.Join(a.dir, db),
				pragma+" CREATE TABLE t (w TEXT, i INTEGER);").CombinedOutput()
			if err != nil {
				t.Fatalf("create: %v: %s", err, out)
			}
			const rows = 150
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, w := range []struct {
				name string
				dir  string
			}{{"a", a.dir}, {"b", b.dir}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var sql strings.Builder
					sql.WriteString(".timeout 60000\n")
					if mode == "wal" {
						sql.WriteString("PRAGMA locking_mode=EXCLUSIVE;\n")
					}
					for i := range rows {
						fmt.Fprintf(&sql, "INSERT INTO t VALUES ('%s', %d);\n", w.name, i)
					}
					cmd := exec.Command("sqlite3", filepath.Join(w.dir, db))
					cmd.Stdin = strings.NewReader(sql.String())
					if out, err := cmd.CombinedOutput(); err != nil {
						errs <- fmt.Errorf("writer %s: %v: %s", w.name, err, out)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				t.Logf("mount a:\n%s\nmount b:\n%s", tail(a.log.String(), 3000), tail(b.log.String(), 3000))
			}
			for _, d := range []string{a.dir, b.dir} {
				check := "PRAGMA integrity_check; SELECT w, count(*), count(DISTINCT i) FROM t GROUP BY w ORDER BY w;"
				if mode == "wal" {
					check = ".output /dev/null\nPRAGMA locking_mode=EXCLUSIVE;\n.output stdout\nPRAGMA journal_mode;\n" + check
				}
				cmd := exec.Command("sqlite3", filepath.Join(d, db))
				cmd.Stdin = strings.NewReader(check)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("check: %v: %s", err, out)
				}
				want := fmt.Sprintf("ok\na|%d|%d\nb|%d|%d\n", rows, rows, rows, rows)
				if mode == "wal" {
					want = "wal\n" + want
				}
				if string(out) != want {
					t.Fatalf("read through %s: %q, want %q", d, out, want)
				}
			}
		})
	}
}
