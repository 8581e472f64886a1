package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// sdk connects an in-process client to the cluster's metaserver.
func (c *cluster) sdk() *client.Client {
	c.t.Helper()
	cfg := client.DefaultConfig()
	cfg.Meta = c.meta
	cl, err := client.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func TestPutGetLargeFile(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 128 << 20
	}
	c := startCluster(t, clusterOpts{})
	src := filepath.Join(t.TempDir(), "big.bin")
	sum := writeRandomFile(t, src, size, 1)
	c.mustCLI("mkdir", "-p", "/media/films")
	c.mustCLI("put", src, "/media/films/big.bin")
	if out := c.mustCLI("stat", "/media/films/big.bin"); !strings.Contains(out, fmt.Sprintf("Size: %d", size)) {
		t.Fatalf("stat shows the wrong size:\n%s", out)
	}
	os.Remove(src)
	dst := filepath.Join(t.TempDir(), "back.bin")
	c.mustCLI("get", "/media/films/big.bin", dst)
	if got := sha256File(t, dst); got != sum {
		t.Fatalf("sha256 of the file read back = %s, put %s", got, sum)
	}
}

func TestOverwriteMiddleThroughSDK(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	src := filepath.Join(t.TempDir(), "f.bin")
	writeRandomFile(t, src, 16<<20, 2)
	c.mustCLI("put", src, "/f.bin")

	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	patch := bytes.Repeat([]byte("reelfs!!"), (1<<20)/8)
	off := int64(7<<20 + 12345) // straddles a 4 MiB block boundary
	copy(want[off:], patch)

	ctx := context.Background()
	cl := c.sdk()
	f, err := cl.OpenPath(ctx, "/f.bin", os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, patch, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, code := c.cli("cat", "/f.bin")
	if code != 0 || !bytes.Equal([]byte(got), want) {
		t.Fatalf("read back after overwrite differs (exit %d, %d bytes)", code, len(got))
	}
}

func TestConcurrentPuts(t *testing.T) {
	n, size := 8, int64(64<<20)
	if testing.Short() {
		size = 16 << 20
	}
	c := startCluster(t, clusterOpts{})
	dir := t.TempDir()
	sums := make([]string, n)
	for i := range sums {
		sums[i] = writeRandomFile(t, filepath.Join(dir, fmt.Sprint(i)), size, uint64(100+i))
	}
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, e, code := c.cli("put", filepath.Join(dir, fmt.Sprint(i)), fmt.Sprintf("/p%d", i)); code != 0 {
				errs[i] = e
			}
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("put %d failed: %s", i, e)
		}
	}
	for i := 0; i < n; i++ {
		dst := filepath.Join(dir, fmt.Sprintf("back%d", i))
		c.mustCLI("get", fmt.Sprintf("/p%d", i), dst)
		if got := sha256File(t, dst); got != sums[i] {
			t.Fatalf("file %d: sha256 %s, want %s", i, got, sums[i])
		}
	}
}

func TestKill9KeepsCommittedFiles(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	dir := t.TempDir()
	sums := map[string]string{}
	for i, size := range []int64{0, 1, 4 << 20, 9<<20 + 7, 70 << 20} {
		local := filepath.Join(dir, fmt.Sprint(i))
		sums[fmt.Sprintf("/k/%d", i)] = writeRandomFile(t, local, size, uint64(200+i))
	}
	c.mustCLI("mkdir", "/k")
	for remote := range sums {
		c.mustCLI("put", filepath.Join(dir, filepath.Base(remote)), remote)
	}
	// A put still running when the crash comes must not harm the others.
	big := filepath.Join(dir, "inflight")
	writeRandomFile(t, big, 256<<20, 299)
	cmd := startCLI(c, "put", big, "/k/inflight")
	time.Sleep(300 * time.Millisecond)
	c.kill9()
	cmd.Wait()

	c.restart()
	for remote, sum := range sums {
		dst := filepath.Join(dir, "back")
		c.mustCLI("get", remote, dst)
		if got := sha256File(t, dst); got != sum {
			t.Fatalf("%s after kill -9: sha256 %s, want %s", remote, got, sum)
		}
	}
}

func TestDeleteReclaimsDisk(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	blocks := func() int64 {
		return dirBytes(t, filepath.Join(c.dir, "data", "chunk1", "blocks")) +
			dirBytes(t, filepath.Join(c.dir, "data", "chunk2", "blocks"))
	}
	start := blocks()
	dir := t.TempDir()
	c.mustCLI("mkdir", "-p", "/gc/a/b")
	for i := 0; i < 3; i++ {
		local := filepath.Join(dir, fmt.Sprint(i))
		writeRandomFile(t, local, 40<<20, uint64(300+i))
		c.mustCLI("put", local, fmt.Sprintf("/gc/a/b/%d", i))
	}
	// Overwrite one file: its old blocks must go too.
	c.mustCLI("put", filepath.Join(dir, "0"), "/gc/a/b/1")
	if used := blocks(); used < start+100<<20 {
		t.Fatalf("only %d bytes of blocks after putting 120 MiB", used-start)
	}
	c.mustCLI("rm", "-r", "/gc")
	eventually(t, 60*time.Second, "chunkserver disk usage back near its start", func() bool {
		return blocks() <= start+1<<20
	})
}

func TestClearErrorsForBadCommands(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	local := filepath.Join(t.TempDir(), "x")
	writeRandomFile(t, local, 1000, 3)
	c.mustCLI("mkdir", "/d")
	c.mustCLI("put", local, "/d/x")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "/missing", filepath.Join(t.TempDir(), "m")}, "no such file or directory"},
		{[]string{"cat", "/d/missing"}, "no such file or directory"},
		{[]string{"put", local, "/nodir/sub/x"}, "no such file or directory"},
		{[]string{"ls", "/missing"}, "no such file or directory"},
		{[]string{"rm", "/d"}, "directory not empty"},
		{[]string{"mkdir", "/d"}, "already exists"},
		{[]string{"mkdir", "/d/x/y"}, "not a directory"},
		{[]string{"cat", "/d"}, "is a directory"},
		{[]string{"put", "/no/such/local/file", "/y"}, "no such file or directory"},
		{[]string{"get"}, "want REMOTE"},
		{[]string{"frobnicate"}, "unknown command"},
	}
	for _, tc := range cases {
		out, errs, code := c.cli(tc.args...)
		if code == 0 {
			t.Errorf("reelfs %v succeeded (%q), want an error", tc.args, out)
			continue
		}
		if !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("reelfs %v: stderr %q, want one line containing %q", tc.args, errs, tc.want)
		}
	}
	// Nothing stored was harmed.
	if got, _, _ := c.cli("cat", "/d/x"); len(got) != 1000 {
		t.Fatalf("/d/x is %d bytes after the bad commands", len(got))
	}
	c.cli("get", "/missing", filepath.Join(t.TempDir(), "m"))
}

func TestCorruptBlockIsAnErrorNotWrongBytes(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	dir := t.TempDir()
	writeRandomFile(t, filepath.Join(dir, "victim"), 6<<20, 4)
	okSum := writeRandomFile(t, filepath.Join(dir, "other"), 6<<20, 5)
	c.mustCLI("put", filepath.Join(dir, "victim"), "/victim")
	before := blockFiles(t, c)
	c.mustCLI("put", filepath.Join(dir, "other"), "/other")
	if len(before) == 0 {
		t.Fatal("no block files found on the chunkservers")
	}
	for _, p := range before { // flip one byte in the middle of every block of /victim
		flipByte(t, p)
	}
	_, errs, code := c.cli("get", "/victim", filepath.Join(dir, "back"))
	if code == 0 {
		t.Fatal("get of a corrupted file succeeded")
	}
	if !strings.Contains(strings.ToLower(errs), "checksum") || !strings.Contains(errs, "block") {
		t.Fatalf("error does not name the checksum failure and the block: %q", errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "back")); err == nil {
		t.Fatal("a failed get left a partial file under the target name")
	}
	c.mustCLI("get", "/other", filepath.Join(dir, "other.back"))
	if sha256File(t, filepath.Join(dir, "other.back")) != okSum {
		t.Fatal("an undamaged file changed")
	}
}

// blockFiles lists every block file on the cluster's chunkservers.
func blockFiles(t *testing.T, c *cluster) []string {
	var out []string
	for _, cs := range []string{"chunk1", "chunk2"} {
		filepath.Walk(filepath.Join(c.dir, "data", cs, "blocks"), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && !strings.Contains(info.Name(), ".tmp") {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func flipByte(t *testing.T, p string) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, 1)
	off := st.Size() / 3
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestGarbageOnEveryEndpoint posts malformed bodies to every metaserver op
// and chunkserver endpoint: each must answer 4xx, and nothing stored may
// change.
func TestGarbageOnEveryEndpoint(t *testing.T) {
	c := startCluster(t, clusterOpts{})
	local := filepath.Join(t.TempDir(), "x")
	sum := writeRandomFile(t, local, 5<<20, 6)
	c.mustCLI("put", local, "/keep")

	ops := []string{wire.OpLookup, wire.OpResolve, wire.OpGetAttr, wire.OpSetAttr, wire.OpMkdir, wire.OpCreate,
		wire.OpUnlink, wire.OpRmdir, wire.OpRename, wire.OpLink, wire.OpSymlink, wire.OpReadlink, wire.OpReadDir,
		wire.OpGetXattr, wire.OpSetXattr, wire.OpListXattr, wire.OpRemoveXattr, wire.OpOpen, wire.OpRelease,
		wire.OpSession, wire.OpReadChunk, wire.OpCommit, wire.OpAlloc, wire.OpHeartbeat, "nosuchop"}
	bodies := []string{"", "{", "null", "[]", `{"i":"x"}`, "\x00\xff\xfe", strings.Repeat("[", 10000)}
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, op := range ops {
		for _, body := range bodies {
			resp, err := hc.Post("http://"+c.meta+wire.PathMeta+op, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatalf("%s %q: %v", op, body, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 || resp.StatusCode < 400 {
				t.Errorf("metaserver %s with body %q: status %d", op, body, resp.StatusCode)
			}
		}
	}
	// Well-formed JSON that asks for something impossible.
	targeted := map[string]string{
		wire.OpCommit:  `{"i":1,"s":[{"c":4294967295,"p":4294967295,"l":4294967295,"id":1}]}`,
		wire.OpLookup:  `{"p":1,"n":"../x"}`,
		wire.OpMkdir:   `{"p":1,"n":"a/b","m":16877}`,
		wire.OpCreate:  `{"p":1,"n":"","m":33188}`,
		wire.OpAlloc:   `{"n":-5,"b":1}`,
		wire.OpRename:  `{"p":1,"n":"keep","np":1,"nn":"x\u0000y"}`,
		wire.OpSetAttr: `{"i":999999,"v":8,"s":1}`,
	}
	for op, body := range targeted {
		resp, err := hc.Post("http://"+c.meta+wire.PathMeta+op, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("metaserver %s with body %s: status %d, want 4xx", op, body, resp.StatusCode)
		}
	}
	for _, cs := range c.chunks {
		reqs := []struct{ method, path, body, rng string }{
			{"PUT", wire.PathBlock + "zz", "x", ""},
			{"PUT", wire.PathBlock + "0000000000000000", "x", ""},
			{"PUT", wire.PathBlock + "../../etc/passwd", "x", ""},
			{"GET", wire.PathBlock + "00000000000000ff", "", ""},
			{"GET", wire.PathBlock + "not-hex-at-all!!", "", ""},
			{"GET", wire.PathBlock + "0000000000000001", "", "bytes=9-1"},
			{"GET", wire.PathBlock + "0000000000000001", "", "bytes=a-b"},
			{"DELETE", wire.PathBlock + "%2e%2e%2f%2e%2e", "", ""},
			{"GET", wire.PathBlocks + "?after=zz&limit=-1", "", ""},
			{"GET", wire.PathBinlog + "?from=x&wait=forever", "", ""},
			{"POST", wire.PathStatus, "{", ""},
		}
		for _, r := range reqs {
			req, _ := http.NewRequest(r.method, "http://"+cs+r.path, strings.NewReader(r.body))
			if r.rng != "" {
				req.Header.Set("Range", r.rng)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("chunkserver %s %s: %v", r.method, r.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("chunkserver %s %s (range %q): status %d, want 4xx", r.method, r.path, r.rng, resp.StatusCode)
			}
		}
	}
	dst := filepath.Join(t.TempDir(), "back")
	c.mustCLI("get", "/keep", dst)
	if sha256File(t, dst) != sum {
		t.Fatal("a stored file changed after garbage requests")
	}
}

// startCLI starts a client command without waiting for it.
func startCLI(c *cluster, args ...string) *exec.Cmd {
	cmd := exec.Command(reelfsBin, args...)
	cmd.Env = append(os.Environ(), "REELFS_META="+c.meta)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return cmd
}
