// Package tests holds end-to-end tests: they build the real reelfs binary,
// start it as separate processes on loopback ports and check what users
// see (bytes by sha256, exit codes, messages).
package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reelfsBin is the binary under test: $REELFS_BIN (make e2e sets it) or
// one built once by TestMain.
var reelfsBin string

func TestMain(m *testing.M) {
	reelfsBin = os.Getenv("REELFS_BIN")
	cleanup := func() {}
	if reelfsBin == "" {
		dir, err := os.MkdirTemp("", "reelfs-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		reelfsBin = filepath.Join(dir, "reelfs")
		build := exec.Command("go", "build", "-o", reelfsBin, "github.com/reelfs/reelfs/cmd/reelfs")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build reelfs:", err)
			cleanup()
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeUDPAddr returns a loopback UDP address with a port that was free
// just now.
func freeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// cluster is a running `reelfs server` process.
type cluster struct {
	t      testing.TB
	dir    string // --dir
	meta   string
	chunks []string
	http   string
	mount  string
	secret string // sent by cli when set
	live   string // HTTP address of the live server ("" when not started)
	media  string // its UDP media address
	extra  []string
	p      *proc         // the running server
	log    *lockedBuffer // its output, stdout lines prefixed
}

// proc is a reelfs process a test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed once the process has exited
	err  error         // how it exited; read after done
}

// launch starts cmd, whose output the caller has wired to log, and
// watches for its exit.
func launch(t testing.TB, name string, cmd *exec.Cmd, log *lockedBuffer) *proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p
}

// startProc runs `reelfs args...` with its output in a fresh log.
func startProc(t testing.TB, args ...string) *proc {
	t.Helper()
	log := &lockedBuffer{}
	cmd := exec.Command(reelfsBin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	return launch(t, args[0], cmd, log)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and reports a process that does not exit cleanly
// within grace (it is then killed).
func (p *proc) stop(t testing.TB, grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("reelfs %s did not exit cleanly: %v\n%s", p.name, p.err, tail(p.log.String(), 4000))
		}
	case <-time.After(grace):
		p.kill()
		t.Errorf("reelfs %s ignored SIGTERM for %s\n%s", p.name, grace, tail(p.log.String(), 4000))
	}
}

// kill kills the process without warning, as a crash would, and waits.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

type clusterOpts struct {
	mount bool     // mount FUSE at dir/mnt
	http  bool     // start httpd
	extra []string // more server flags
	live  bool     // start the live (WebRTC) server on fresh ports
	// chunkservers is the size of the server's group (0: the default, 2).
	chunkservers int
}

// startCluster starts `reelfs server` with fresh ports and data under a
// temp dir, and stops it (SIGTERM) when the test ends.
func startCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	// A port found free can be taken by another process's outgoing
	// connection before the server binds it (both come from the
	// ephemeral range): such a start is retried on fresh ports and a
	// fresh directory, a bounded number of times.
	for try := 1; ; try++ {
		c := newCluster(t, o)
		err := c.tryStart()
		if err == nil {
			t.Cleanup(c.stop)
			return c
		}
		if try == 3 || !c.p.exited() || !strings.Contains(c.log.String(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("reelfs server could not bind a port found free (try %d); retrying on fresh ports", try)
	}
}

// newCluster picks the ports and directories of a cluster.
func newCluster(t testing.TB, o clusterOpts) *cluster {
	c := &cluster{t: t, dir: t.TempDir(), meta: freeAddr(t), extra: o.extra}
	for range max(o.chunkservers, 2) {
		c.chunks = append(c.chunks, freeAddr(t))
	}
	if o.http {
		c.http = freeAddr(t)
	}
	if o.mount {
		c.mount = filepath.Join(c.dir, "mnt")
	}
	if o.live {
		c.live, c.media = freeAddr(t), freeUDPAddr(t)
	}
	return c
}

func (c *cluster) args() []string {
	a := []string{"server", "--dir", filepath.Join(c.dir, "data"), "--meta-listen", c.meta,
		"--chunkservers", strconv.Itoa(len(c.chunks)), "--chunk-listen", strings.Join(c.chunks, ","), "--http-listen", c.http, "--mount", c.mount,
		"--live-listen", c.live}
	if c.live != "" {
		a = append(a, "--live-media", c.media)
	}
	return append(a, c.extra...)
}

// start launches the server and waits for its "reelfs is running" banner.
func (c *cluster) start() {
	c.t.Helper()
	if err := c.tryStart(); err != nil {
		c.t.Fatal(err)
	}
}

// tryStart is start, returning why the server did not come up.
func (c *cluster) tryStart() error {
	c.t.Helper()
	c.log = &lockedBuffer{}
	cmd := exec.Command(reelfsBin, c.args()...)
	cmd.Stderr = c.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	c.p = launch(c.t, "server", cmd, c.log)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			c.log.Write([]byte("stdout: " + sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-c.p.done:
		return fmt.Errorf("reelfs server exited at start: %v\n%s", c.p.err, c.log.String())
	case <-time.After(60 * time.Second):
		return fmt.Errorf("reelfs server did not start in 60s\n%s", c.log.String())
	}
}

// stop sends SIGTERM and waits for a graceful exit.
func (c *cluster) stop() {
	if c.p == nil {
		return
	}
	c.p.stop(c.t, 60*time.Second)
	c.unmount()
}

// kill9 kills the server without warning, as a crash would.
func (c *cluster) kill9() {
	c.p.kill()
	c.unmount()
}

// unmount clears the server's mount point, also after a crash.
func (c *cluster) unmount() {
	if c.mount != "" {
		exec.Command("fusermount3", "-u", "-z", c.mount).Run()
	}
}

// restart starts the server again on the same ports and data.
func (c *cluster) restart() { c.start() }

// cli runs a client command against the cluster and returns stdout,
// stderr and the exit code.
func (c *cluster) cli(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, reelfsBin, args...)
	cmd.Env = append(os.Environ(), "REELFS_META="+c.meta, "REELFS_SECRET="+c.secret)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run reelfs %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustCLI runs a client command that must succeed.
func (c *cluster) mustCLI(args ...string) string {
	c.t.Helper()
	out, errs, code := c.cli(args...)
	if code != 0 {
		c.t.Fatalf("reelfs %v: exit %d: %s", args, code, errs)
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// writeRandomFile writes size pseudo-random bytes (seeded) to path and
// returns their sha256.
func writeRandomFile(t testing.TB, path string, size int64, seed uint64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		r.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sha256File hashes a local file.
func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dirBytes sums the sizes of regular files under dir.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// eventually polls cond every 100ms until it holds or the wait is over.
func eventually(t testing.TB, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
