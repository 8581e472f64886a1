package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// twoMounts starts a metaserver (session TTL 10 s), a group of two
// chunkservers and two separate `reelfs mount` processes of the cluster,
// as two machines would mount it.
func twoMounts(t *testing.T) (*group, *mountProc, *mountProc) {
	g, a, b, _ := twoMountsMeta(t)
	return g, a, b
}

// twoMountsMeta is twoMounts that also returns the metaserver's process.
func twoMountsMeta(t *testing.T) (*group, *mountProc, *mountProc, *proc) {
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
	return g, a, b, mp
}

// runStuckAware runs cmd for at most limit. A command still running then
// is reported with where it waits in the kernel, and every process in
// procs is sent SIGQUIT so that its log shows what each goroutine was
// doing; the command is then killed.
func runStuckAware(t *testing.T, cmd *exec.Cmd, limit time.Duration, procs ...*proc) ([]byte, error) {
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(limit):
	}
	pid := cmd.Process.Pid
	var why strings.Builder
	for _, f := range []string{"wchan", "syscall", "stack"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		fmt.Fprintf(&why, "/proc/%d/%s: %s\n", pid, f, b)
	}
	for _, p := range procs {
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGQUIT)
		}
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprintf(&why, "--- reelfs %s:\n%s\n", p.name, tail(p.log.String(), 200000))
	}
	cmd.Process.Kill()
	<-done
	t.Logf("%s still running after %v:\n%s", cmd.Args[0], limit, why.String())
	return []byte(out.String()), fmt.Errorf("%s still running after %v (see the log for where it waited)", cmd.Args[0], limit)
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
	_, a, b, meta := twoMountsMeta(t)
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
					path := filepath.Join(w.dir, db)
					if mode == "wal" {
						errs <- walWriter(t, path, w.name, rows, a.proc, b.proc, meta)
						return
					}
					// Rollback journals: a statement at a time; SQLite takes
					// and drops the locks around each, and the busy handler
					// waits out the other writer.
					var sql strings.Builder
					sql.WriteString(".timeout 60000\n")
					for i := range rows {
						fmt.Fprintf(&sql, "INSERT INTO t VALUES ('%s', %d);\n", w.name, i)
					}
					cmd := exec.Command("sqlite3", path)
					cmd.Stdin = strings.NewReader(sql.String())
					// A few seconds normally; bounded so that a hang says
					// where it waits instead of stalling the suite.
					if out, err := runStuckAware(t, cmd, 3*time.Minute, a.proc, b.proc, meta); err != nil {
						errs <- fmt.Errorf("writer %s: %v: %s", w.name, err, out)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
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

// walWriter inserts rows rows tagged name into the WAL database at path
// the way an application on each machine must when it keeps the WAL index
// in its own memory (locking_mode=EXCLUSIVE): in transactions, each by a
// connection that gives up when the other machine holds the database and
// tries again later. Two such connections that both read before either
// writes each hold the SHARED lock the other's write waits for, and
// neither lets go until its busy timeout ends (on a local disk too: 5 of
// 30 runs of two sqlite3 shells on ext4). A failed transaction is rolled
// back whole, so a retry never doubles a row.
func walWriter(t *testing.T, path, name string, rows int, procs ...*proc) error {
	const batches = 3
	per := rows / batches
	for bt := range batches {
		var sql strings.Builder
		sql.WriteString(".bail on\n.timeout 2000\nPRAGMA locking_mode=EXCLUSIVE;\nBEGIN IMMEDIATE;\n")
		for i := bt * per; i < (bt+1)*per; i++ {
			fmt.Fprintf(&sql, "INSERT INTO t VALUES ('%s', %d);\n", name, i)
		}
		sql.WriteString("COMMIT;\n")
		var last []byte
		for attempt := 0; ; attempt++ {
			if attempt == 40 {
				return fmt.Errorf("writer %s: batch %d still refused after %d attempts: %s", name, bt, attempt, last)
			}
			cmd := exec.Command("sqlite3", path)
			cmd.Stdin = strings.NewReader(sql.String())
			out, err := runStuckAware(t, cmd, 3*time.Minute, procs...)
			if err == nil {
				t.Logf("writer %s: batch %d committed at attempt %d", name, bt, attempt+1)
				break
			}
			if !strings.Contains(string(out), "database is locked") {
				return fmt.Errorf("writer %s: %v: %s", name, err, out)
			}
			last = out
			time.Sleep(time.Duration(50+rand.IntN(450)) * time.Millisecond)
		}
	}
	return nil
}
