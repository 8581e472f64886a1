package tests

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startDaemon starts one reelfs daemon as its own process, stopped when
// the test ends.
func startDaemon(t *testing.T, args ...string) {
	t.Helper()
	d := startProc(t, args...)
	t.Cleanup(func() { d.stop(t, 30*time.Second) })
}

// TestSeparateProcesses runs the cluster as separate processes, as
// docs/operations.md shows: a metaserver, a group of two chunkservers and
// an httpd, then puts through the CLI and reads over HTTP.
func TestSeparateProcesses(t *testing.T) {
	dir := t.TempDir()
	meta, c1, c2, web := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	startDaemon(t, "meta", "--dir", filepath.Join(dir, "meta"), "--listen", meta)
	startDaemon(t, "chunk", "--dir", filepath.Join(dir, "c1"), "--listen", c1, "--group", "1", "--meta", meta)
	startDaemon(t, "chunk", "--dir", filepath.Join(dir, "c2"), "--listen", c2, "--group", "1", "--meta", meta)
	startDaemon(t, "httpd", "--listen", web, "--meta", meta)
	c := &cluster{t: t, meta: meta}

	eventually(t, 30*time.Second, "both chunkservers healthy in reelfs status", func() bool {
		out, _, code := c.cli("status")
		return code == 0 && strings.Count(out, "healthy") >= 2 && strings.Contains(out, c1) && strings.Contains(out, c2)
	})
	src := filepath.Join(dir, "f")
	sum := writeRandomFile(t, src, 9<<20+3, 21)
	c.mustCLI("mkdir", "-p", "/films")
	c.mustCLI("put", src, "/films/f.bin")

	var resp *http.Response
	eventually(t, 30*time.Second, "httpd answering", func() bool {
		r, err := http.Get("http://" + web + "/films/f.bin")
		if err != nil {
			return false
		}
		resp = r
		return true
	})
	defer resp.Body.Close()
	back := filepath.Join(dir, "back")
	out, err := os.Create(back)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET over the separate httpd: %d, %v", resp.StatusCode, err)
	}
	out.Close()
	if sha256File(t, back) != sum {
		t.Fatal("the file read over HTTP differs from the one put")
	}
}
