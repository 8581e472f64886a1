package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startDaemon starts one reelfs daemon as its own process, stopped when
// the test ends (or before, by the caller).
func startDaemon(t *testing.T, args ...string) *proc {
	t.Helper()
	d := startProc(t, args...)
	t.Cleanup(func() { d.stop(t, 30*time.Second) })
	return d
}

// TestSeparateProcesses runs the cluster as separate processes, as
// docs/operations.md shows: a metaserver, a group of two chunkservers and
// an httpd, then puts through the CLI and reads over HTTP. Then reelfs
// status tells a degraded cluster (a chunkserver stopped, exit 1) and an
// unreachable one (the metaserver stopped, exit 2) from a healthy one.
func TestSeparateProcesses(t *testing.T) {
	dir := t.TempDir()
	meta, c1, c2, web := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	metaProc := startDaemon(t, "meta", "--dir", filepath.Join(dir, "meta"), "--listen", meta, "--heartbeat-timeout", "2s")
	startDaemon(t, "chunk", "--dir", filepath.Join(dir, "c1"), "--listen", c1, "--group", "1", "--meta", meta)
	c2Proc := startDaemon(t, "chunk", "--dir", filepath.Join(dir, "c2"), "--listen", c2, "--group", "1", "--meta", meta)
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

	var st struct {
		Health struct {
			State    string   `json:"state"`
			Problems []string `json:"problems"`
		} `json:"health"`
		Groups []struct {
			Members []struct {
				Addr string `json:"addr"`
			} `json:"members"`
		} `json:"groups"`
	}
	js, _, code := c.cli("status", "--json")
	if err := json.Unmarshal([]byte(js), &st); err != nil || code != 0 || st.Health.State != "healthy" ||
		len(st.Groups) != 1 || len(st.Groups[0].Members) != 2 {
		t.Fatalf("status --json of a healthy cluster: exit %d, %v: %s", code, err, js)
	}
	c2Proc.stop(t, 30*time.Second)
	eventually(t, 30*time.Second, "status exits 1 with a chunkserver stopped", func() bool {
		js, errOut, code := c.cli("status", "--json")
		if code == 0 {
			return false
		}
		if err := json.Unmarshal([]byte(js), &st); err != nil || code != 1 || st.Health.State != "degraded" ||
			!strings.Contains(strings.Join(st.Health.Problems, " "), c2) || !strings.Contains(errOut, "degraded") {
			t.Fatalf("status with %s stopped: exit %d, %v: %s %s", c2, code, err, js, errOut)
		}
		return true
	})
	metaProc.stop(t, 30*time.Second)
	if out, errOut, code := c.cli("status", "--timeout", "1s"); code != 2 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("status with the metaserver stopped: exit %d: %s %s", code, out, errOut)
	}
}
