package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/metaserver"
)

// TestBackupRestoreCluster: back up a running cluster's namespace, write
// more, stop the metaserver, restore the backup into a fresh directory and
// start a metaserver on it at the same address: every file of the backup
// reads back with its sha256, what came after is gone, and a new file
// (whose block ids would have collided with the post-backup ones without
// the restore's counter jump) reads back whole.
func TestBackupRestoreCluster(t *testing.T) {
	tc := newTestCluster(t, 2)
	local := t.TempDir()
	sums := map[string]string{}
	put := func(remote string, size int) string {
		t.Helper()
		b := make([]byte, size)
		rand.Read(b)
		p := filepath.Join(local, strings.ReplaceAll(remote, "/", "_"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tc.mustRun("put", p, remote, "--progress=false")
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	tc.mustRun("mkdir", "-p", "/films/2026")
	for remote, size := range map[string]int{"/films/2026/a.mp4": 9 << 20, "/films/b.mp4": 300 << 10, "/c.txt": 1, "/films/empty": 0} {
		sums[remote] = put(remote, size)
	}
	backup := filepath.Join(t.TempDir(), "ns.backup")
	if out := tc.mustRun("backup", "-o", backup); !strings.Contains(out, "op-log seq") {
		t.Fatalf("backup: %q", out)
	}
	put("/after.mp4", 9<<20) // its blocks stay on the chunkservers, unreferenced
	tc.mustRun("rm", "/c.txt")

	tc.stopMeta()
	dir := t.TempDir()
	if out := tc.mustRun("restore", "--dir", dir, backup); !strings.Contains(out, "restored") {
		t.Fatalf("restore: %q", out)
	}
	if _, errOut, code := tc.run("restore", "--dir", dir, backup); code != 1 || !strings.Contains(errOut, "already holds") {
		t.Fatalf("restore into a used dir: exit %d: %s", code, errOut)
	}
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir = dir
	mcfg.Listen = tc.meta
	mcfg.HeartbeatTimeout = time.Second
	mcfg.GCInterval = 100 * time.Millisecond
	var ms *metaserver.Server
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment
		if ms, err = metaserver.New(mcfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, "restored metaserver", ms.Run)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, code := tc.run("status"); code == statusHealthy {
			break
		}
		if time.Now().After(deadline) {
			out, errOut, code := tc.run("status")
			t.Fatalf("restored cluster not healthy in 30s: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}

	sums["/new.mp4"] = put("/new.mp4", 9<<20)
	for remote, want := range sums {
		out, errOut, code := tc.run("cat", remote)
		got := sha256.Sum256([]byte(out))
		if code != 0 || hex.EncodeToString(got[:]) != want {
			t.Errorf("%s after restore: exit %d, sha256 %x, want %s: %s", remote, code, got, want, errOut)
		}
	}
	if _, errOut, code := tc.run("stat", "/after.mp4"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("a file written after the backup: exit %d: %s", code, errOut)
	}
}
