package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// startHTTPD runs `reelfs httpd` against meta and returns its base URL.
func startHTTPD(t *testing.T, meta string) string {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "httpd", "--meta", meta, "--listen", addr)
	t.Cleanup(func() { p.stop(t, 30*time.Second) })
	url := "http://" + addr
	eventually(t, 30*time.Second, "httpd up", func() bool {
		if p.exited() {
			t.Fatalf("httpd exited: %v\n%s", p.err, p.log.String())
		}
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return url
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return b
}

// TestGrowingFileAcrossMounts: a file appended on mount A by a writer
// that never closes it is followed by `tail -f` on mount B, line by line
// within the documented bound; a descriptor opened on B before the
// appends reads exactly as many bytes as its fstat says; an HTTP client
// reads a prefix of what was written while it grows, and the same bytes
// as the mounts at the end.
func TestGrowingFileAcrossMounts(t *testing.T) {
	g, a, b := twoMounts(t)
	web := startHTTPD(t, g.meta)
	pa, pb := filepath.Join(a.dir, "app.log"), filepath.Join(b.dir, "app.log")
	w, err := os.OpenFile(pa, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	eventually(t, 10*time.Second, "the new file visible on B", func() bool {
		_, err := os.Stat(pb)
		return err == nil
	})
	early, err := os.Open(pb) // opened before any append
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()

	tailCmd := exec.Command("tail", "-n", "+1", "-f", pb)
	out, err := tailCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tailCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tailCmd.Process.Kill(); tailCmd.Wait() }()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			seen[sc.Text()] = time.Now()
			mu.Unlock()
		}
	}()

	const lines = 24
	var written bytes.Buffer
	wrote := make([]time.Time, lines)
	prefixChecked := false
	for i := range lines {
		line := fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 40+i*7))
		if _, err := w.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
		wrote[i] = time.Now()
		written.WriteString(line + "\n")
		time.Sleep(250 * time.Millisecond)
		if i == lines/2 {
			// While it grows, HTTP serves what is committed: a prefix of
			// what was written, never other bytes.
			got := httpGet(t, web+"/app.log")
			if !bytes.HasPrefix(written.Bytes(), got) {
				t.Fatalf("HTTP read of the growing file (%d bytes) is not a prefix of what was written", len(got))
			}
			prefixChecked = len(got) > 0
		}
	}
	if !prefixChecked {
		t.Fatal("HTTP saw nothing of the growing file halfway through")
	}
	eventually(t, 15*time.Second, "tail -f on B shows every line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= lines
	})
	var delays []time.Duration
	mu.Lock()
	for i := range lines {
		at, ok := seen[fmt.Sprintf("line %03d %s", i, strings.Repeat("x", 40+i*7))]
		if !ok {
			t.Fatalf("tail -f never showed line %d", i)
		}
		delays = append(delays, at.Sub(wrote[i]))
	}
	mu.Unlock()
	slices.Sort(delays)
	median, worst := delays[len(delays)/2], delays[len(delays)-1]
	t.Logf("tail -f on mount B: line delay median %v, max %v over %d lines (commit every 1 s, attribute timeout 1 s, tail polls every 1 s)",
		median.Round(time.Millisecond), worst.Round(time.Millisecond), lines)
	// The bound is 2 s (commit 0.5-0.6 s + upload, then tail's next poll
	// within 1 s). A block PUT waits for fsyncs on two chunkservers, which
	// on a shared disk now and then takes a few hundred ms more: the test
	// holds nine lines in ten to 2 s and every line to 2.5 s.
	if p90 := delays[len(delays)*9/10]; p90 > 2*time.Second || worst > 2500*time.Millisecond {
		t.Errorf("tail -f on the other mount: 90%% of lines within %v, all within %v (bounds 2 s, 2.5 s)", p90, worst)
	}

	// The descriptor opened before the appends: size and reads agree.
	eventually(t, 10*time.Second, "the early descriptor sees the whole file", func() bool {
		st, err := early.Stat()
		return err == nil && st.Size() == int64(written.Len())
	})
	got, err := io.ReadAll(io.NewSectionReader(early, 0, 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, written.Bytes()) {
		t.Fatalf("the early descriptor reads %d bytes, fstat says %d; equal bytes: %v", len(got), written.Len(), bytes.Equal(got, written.Bytes()))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(written.Bytes())
	if h := sha256.Sum256(httpGet(t, web+"/app.log")); h != want {
		t.Fatal("HTTP serves other bytes than were written")
	}
	fromB, err := os.ReadFile(pb)
	if err != nil || sha256.Sum256(fromB) != want {
		t.Fatalf("mount B reads other bytes than were written (%d bytes, %v)", len(fromB), err)
	}
}

// framemd5 decodes path with ffmpeg and returns one line per decoded
// frame (the frame's timestamp and the md5 of its picture).
func framemd5(path string) ([]string, error) {
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "framemd5", "-").Output()
	var frames []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			frames = append(frames, line)
		}
	}
	return frames, err
}

// TestGrowingFMP4PlaysFromOtherMount: ffmpeg records a fragmented MP4
// (a fragment per second, in real time) into mount A; while it records,
// a player on mount B opens the file again and again, as a player of a
// growing recording does, and each time decodes more frames, each time
// exactly the first frames of the finished recording.
func TestGrowingFMP4PlaysFromOtherMount(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg missing: run scripts/deps.sh")
	}
	_, a, b := twoMounts(t)
	pa, pb := filepath.Join(a.dir, "live.mp4"), filepath.Join(b.dir, "live.mp4")
	rec := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "8",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
		// a fragment per keyframe, written out as soon as it is complete
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", "-flush_packets", "1", "-f", "mp4", pa)
	var recErr bytes.Buffer
	rec.Stderr = &recErr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Wait() }()
	var seen [][]string // what each play while recording decoded
	for ended := false; !ended; {
		select {
		case err := <-recDone:
			if err != nil {
				t.Fatalf("recording ffmpeg: %v\n%s", err, recErr.String())
			}
			ended = true
			continue
		case <-time.After(1200 * time.Millisecond):
		}
		frames, _ := framemd5(pb) // the last fragment may be cut short: errors about it are expected
		if len(frames) > 0 {
			seen = append(seen, frames)
		}
	}
	want, err := framemd5(pb)
	if err != nil {
		t.Fatalf("decoding the finished recording from B: %v", err)
	}
	if len(want) < 150 {
		t.Fatalf("the finished recording has %d frames, want about 200", len(want))
	}
	var counts []int
	for _, frames := range seen {
		counts = append(counts, len(frames))
		if len(frames) > len(want) || !slices.Equal(frames, want[:len(frames)]) {
			t.Fatalf("a play while recording decoded %d frames that are not the recording's first ones", len(frames))
		}
	}
	t.Logf("plays from mount B while the recording grew decoded %v frames; finished: %d", counts, len(want))
	grew := 0
	for i := 1; i < len(counts); i++ {
		if counts[i] > counts[i-1] {
			grew++
		}
	}
	if grew < 3 {
		t.Fatalf("the recording grew only %d times as mount B played it (frames per play: %v)", grew, counts)
	}
}
