package tests

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s missing: run scripts/deps.sh", n)
		}
	}
}

// clip describes a generated test clip.
type clip struct {
	name    string
	args    []string // ffmpeg output options
	streams []string // codec_type of each stream, in order
}

var clips = []clip{
	{"clip.mp4", []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"}, []string{"video", "audio"}},
	{"clip.webm", []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-g", "50", "-c:a", "libopus"}, []string{"video", "audio"}},
	{"clip.mkv", []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac"}, []string{"video", "audio"}},
	{"clip.mp3", []string{"-vn", "-c:a", "libmp3lame", "-b:a", "128k"}, []string{"audio"}},
}

// makeClip writes a 30 s clip from ffmpeg's lavfi sources to out.
func makeClip(t *testing.T, out string, outArgs []string) {
	t.Helper()
	args := []string{"-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=30"}
	args = append(append(args, outArgs...), "-shortest", out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
}

// probe runs ffprobe on a path or URL and returns duration and stream types.
func probe(t *testing.T, src string) (float64, []string) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
		"-of", "json", src).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", src, err, out)
	}
	var r struct {
		Format  struct{ Duration string }
		Streams []struct {
			CodecType string `json:"codec_type"`
		}
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	d, _ := strconv.ParseFloat(r.Format.Duration, 64)
	var types []string
	for _, s := range r.Streams {
		types = append(types, s.CodecType)
	}
	return d, types
}

func checkProbe(t *testing.T, src string, want []string) {
	t.Helper()
	d, types := probe(t, src)
	if d < 29.5 || d > 30.5 {
		t.Errorf("%s: duration %.2f s, want 30", src, d)
	}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("%s: streams %v, want %v", src, types, want)
	}
}

func TestFFmpegWritesToMount(t *testing.T) {
	needFUSE(t)
	needTool(t, "ffmpeg", "ffprobe")
	c := startCluster(t, clusterOpts{mount: true})
	faststart := append(append([]string{}, clips[0].args...), "-movflags", "+faststart")
	cases := []clip{clips[0], {"fast.mp4", faststart, clips[0].streams}, clips[2], clips[1]}
	for _, cl := range cases {
		makeClip(t, filepath.Join(c.mount, cl.name), cl.args) // the muxer seeks back to patch headers
		checkProbe(t, filepath.Join(c.mount, cl.name), cl.streams)
	}
	png := filepath.Join(t.TempDir(), "frame.png")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-ss", "20", "-i", filepath.Join(c.mount, "clip.mp4"),
		"-frames:v", "1", png).CombinedOutput(); err != nil {
		t.Fatalf("frame at 20 s: %v\n%s", err, out)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Fatalf("frame at 20 s: %v", err)
	}
}

// putClips generates every clip locally and puts it into the cluster.
func putClips(t *testing.T, c *cluster) string {
	t.Helper()
	dir := t.TempDir()
	for _, cl := range clips {
		makeClip(t, filepath.Join(dir, cl.name), cl.args)
		c.mustCLI("put", filepath.Join(dir, cl.name), "/"+cl.name)
	}
	return dir
}

func TestPlayersStreamOverHTTP(t *testing.T) {
	needTool(t, "ffmpeg", "ffprobe", "curl")
	c := startCluster(t, clusterOpts{http: true})
	dir := putClips(t, c)
	base := "http://" + c.http
	for _, cl := range clips {
		checkProbe(t, base+"/"+cl.name, cl.streams)
	}

	// A seek to 25 s must fetch a range far past the start of the file.
	size := fileSize(t, filepath.Join(dir, "clip.mp4"))
	logStart := len(c.log.String())
	png := filepath.Join(t.TempDir(), "frame.png")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-ss", "25", "-i", base+"/clip.mp4", "-frames:v", "1", png).CombinedOutput(); err != nil {
		t.Fatalf("frame at 25 s over HTTP: %v\n%s", err, out)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Fatalf("no frame extracted: %v", err)
	}
	starts := rangeStarts(c.log.String()[logStart:], "/clip.mp4")
	far := false
	for _, s := range starts {
		if s > size/2 {
			far = true
		}
	}
	if !far {
		t.Fatalf("the seek fetched no range past the middle of the %d-byte file; ranges started at %v", size, starts)
	}

	// curl -C - resumes an interrupted download to the same bytes. The file
	// is larger than loopback socket buffers so the cut lands mid-body.
	big := filepath.Join(dir, "resume.bin")
	bigSum := writeRandomFile(t, big, 48<<20, 8)
	c.mustCLI("put", big, "/resume.bin")
	out := filepath.Join(t.TempDir(), "resumed.bin")
	cut := exec.Command("curl", "-s", "--limit-rate", "2M", "-o", out, base+"/resume.bin")
	cut.Start()
	eventually(t, 20*time.Second, "partial download", func() bool { return fileSize(t, out) > 1<<20 })
	cut.Process.Kill()
	cut.Wait()
	if n := fileSize(t, out); n <= 0 || n >= 48<<20 {
		t.Fatalf("interrupted download has %d of %d bytes", n, 48<<20)
	}
	if b, err := exec.Command("curl", "-sS", "-f", "-C", "-", "-o", out, base+"/resume.bin").CombinedOutput(); err != nil {
		t.Fatalf("curl -C -: %v %s", err, b)
	}
	if sha256File(t, out) != bigSum {
		t.Fatal("resumed download differs from the file put")
	}
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

// rangeStarts finds the start offsets of the ranges the access log shows
// for path.
func rangeStarts(log, path string) []int64 {
	var out []int64
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, path) {
			continue
		}
		i := strings.Index(line, "bytes=")
		if i < 0 {
			continue
		}
		rest := line[i+len("bytes="):]
		j := strings.IndexByte(rest, '-')
		if j <= 0 {
			continue
		}
		if n, err := strconv.ParseInt(rest[:j], 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func TestLargeDownloadOverHTTP(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 128 << 20
	}
	c := startCluster(t, clusterOpts{http: true})
	src := filepath.Join(t.TempDir(), "big")
	sum := writeRandomFile(t, src, size, 77)
	c.mustCLI("put", src, "/big.bin")
	os.Remove(src)
	resp, err := http.Get("http://" + c.http + "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		t.Fatal("downloaded sha256 differs from the file put")
	}
}

func TestBrowserPlaysAndSeeks(t *testing.T) {
	needTool(t, "ffmpeg", "chromium")
	c := startCluster(t, clusterOpts{http: true})
	putClips(t, c)
	artifacts := os.Getenv("REELFS_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	os.MkdirAll(artifacts, 0o755)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	for _, name := range []string{"clip.mp4", "clip.webm"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate("http://"+c.http+"/player/"+name)); err != nil {
				t.Fatal(err)
			}
			tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
			defer tcancel()
			now := func() float64 {
				v, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`(() => { const v = document.getElementById("player"); if (v.paused) v.play(); return v.currentTime })()`))
				if err != nil {
					t.Fatalf("read currentTime: %v", err)
				}
				return v
			}
			waitFor := func(what string, cond func(float64) bool) float64 {
				for {
					v := now()
					if cond(v) {
						return v
					}
					select {
					case <-tctx.Done():
						errStr, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`String(document.getElementById("player").error && document.getElementById("player").error.message)`))
						t.Fatalf("%s: currentTime stuck at %.2f (media error %s)", what, v, errStr)
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
			waitFor("play past 2 s", func(v float64) bool { return v > 2 })
			if _, err := chromedp.Run(tctx, chromedp.Evaluate[float64](`document.getElementById("player").currentTime = 20`)); err != nil {
				t.Fatal(err)
			}
			landed := waitFor("seek to 20 s", func(v float64) bool { return v >= 19.5 })
			if landed > 23 {
				t.Fatalf("seek to 20 s landed at %.2f", landed)
			}
			waitFor("keep playing after the seek", func(v float64) bool { return v > landed+1 })
			png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(artifacts, "browser-"+strings.ReplaceAll(name, ".", "-")+".png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

// rawRequest sends a request line and headers exactly as given and returns
// the status code and body.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

func TestHTTPAccessControlAndBadRequests(t *testing.T) {
	needTool(t, "curl")
	const secret = "s3cret-for-tests"
	c := startCluster(t, clusterOpts{http: true, extra: []string{"--secret", secret}})
	c.secret = secret
	src := filepath.Join(t.TempDir(), "f")
	writeRandomFile(t, src, 100000, 9)
	c.mustCLI("put", src, "/film.mp4")
	base := "http://" + c.http

	get := func(url string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(base + "/film.mp4"); code != 403 || body == "" {
		t.Errorf("unsigned read with a secret set: %d %q, want 403 with a reason", code, body)
	}
	signed := strings.TrimSpace(c.mustCLI("sign", "--secret", secret, "--base", base, "--ttl", "1h", "/film.mp4"))
	if code, body := get(signed); code != 200 || len(body) != 100000 {
		t.Errorf("signed read: %d (%d bytes)", code, len(body))
	}
	if code, _ := get(strings.Replace(signed, "/film.mp4", "/film.mp5", 1)); code != 403 {
		t.Errorf("signature reused for another path: %d, want 403", code)
	}
	tampered := signed[:len(signed)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", signed[len(signed)-1])+1)%16])
	if code, _ := get(tampered); code != 403 {
		t.Errorf("altered signature: %d, want 403", code)
	}
	expired := strings.TrimSpace(c.mustCLI("sign", "--secret", secret, "--base", base, "--ttl", "1s", "/film.mp4"))
	time.Sleep(2100 * time.Millisecond)
	if code, body := get(expired); code != 403 || !strings.Contains(strings.ToLower(body), "expire") {
		t.Errorf("expired URL: %d %q, want 403 naming the expiry", code, body)
	}

	// Writes need the bearer token; curl -T uploads.
	up := filepath.Join(t.TempDir(), "up")
	upSum := writeRandomFile(t, up, 9<<20, 10)
	if out, code := runCode("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", up, base+"/up.bin"); code != 0 || out != "401" {
		t.Errorf("PUT without a token: %s, want 401", out)
	}
	if out, code := runCode("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer wrong", "-T", up, base+"/up.bin"); code != 0 || out != "401" {
		t.Errorf("PUT with a wrong token: %s, want 401", out)
	}
	if out, code := runCode("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer "+secret, "-T", up, base+"/up.bin"); code != 0 || out != "201" {
		t.Errorf("PUT with the token: %s, want 201", out)
	}
	back := filepath.Join(t.TempDir(), "back")
	c.mustCLI("get", "/up.bin", back)
	if sha256File(t, back) != upSum {
		t.Error("uploaded file differs")
	}
	if out, _ := runCode("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", base+"/up.bin"); out != "401" {
		t.Errorf("DELETE without a token: %s, want 401", out)
	}
	if out, _ := runCode("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "-H", "Authorization: Bearer "+secret, base+"/up.bin"); out != "204" && out != "200" {
		t.Errorf("DELETE with the token: %s, want 204", out)
	}

	// Traversal and malformed requests: a clear 4xx, never a panic.
	bad := []struct {
		req  string
		want int
	}{
		{"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /a/..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /film.mp4%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"GET relative HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"BREW /film.mp4 HTTP/1.1\r\nHost: x\r\n\r\n", 405},
	}
	for _, b := range bad {
		code, body := rawRequest(t, c.http, b.req)
		if code != b.want || strings.TrimSpace(body) == "" {
			t.Errorf("%q: %d %q, want %d with a reason", strings.SplitN(b.req, "\r\n", 2)[0], code, body, b.want)
		}
	}
	code, _ := get(signed, "Range", "bytes=99999999-")
	if code != 416 {
		t.Errorf("unsatisfiable range: %d, want 416", code)
	}
	if code, _ := get(signed, "Range", "bytes=garbage"); code != 200 {
		t.Errorf("malformed Range is ignored per RFC 9110: %d, want 200", code)
	}
	// The server is still healthy.
	if code, _ := get(signed); code != 200 {
		t.Fatalf("after bad requests the signed read answers %d", code)
	}
}
