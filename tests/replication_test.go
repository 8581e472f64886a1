package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// group is a metaserver and a group of chunkservers as separate
// processes, the way docs/operations.md runs them.
type group struct {
	t     *testing.T
	dir   string
	meta  string
	addrs []string
	dirs  []string
	extra [][]string // per member: extra flags for its next start
	procs []*proc
	cl    *cluster
}

func startGroup(t *testing.T, n int) *group {
	g := &group{t: t, dir: t.TempDir(), meta: freeAddr(t)}
	mp := startProc(t, "meta", "--dir", filepath.Join(g.dir, "meta"), "--listen", g.meta,
		"--heartbeat-timeout", "3s", "--replica-lag-time", "4s", "--upload-grace", "1h")
	t.Cleanup(func() { mp.stop(t, 30*time.Second) })
	g.startMembers(n)
	g.cl = &cluster{t: t, meta: g.meta}
	g.waitInSync(n, 30*time.Second)
	return g
}

// startMembers adds n members on fresh ports under g.dir, each started
// with extra flags, and stops them (resumed first, if stopped) when the
// test ends.
func (g *group) startMembers(n int, extra ...string) {
	for range n {
		i := len(g.addrs)
		g.addrs = append(g.addrs, freeAddr(g.t))
		g.dirs = append(g.dirs, filepath.Join(g.dir, fmt.Sprintf("c%d", i+1)))
		g.extra = append(g.extra, slices.Clone(extra))
		g.procs = append(g.procs, nil)
		g.start(i)
	}
	g.t.Cleanup(func() {
		for i, p := range g.procs {
			if p != nil && !p.exited() {
				p.cmd.Process.Signal(syscall.SIGCONT)
				g.stop(i)
			}
		}
	})
}

func (g *group) start(i int) {
	args := append([]string{"chunk", "--dir", g.dirs[i], "--listen", g.addrs[i], "--group", "1", "--meta", g.meta,
		"--min-copies", "2", "--scrub-rate", "0"}, g.extra[i]...)
	g.procs[i] = startProc(g.t, args...)
}

func (g *group) stop(i int) {
	if p := g.procs[i]; p != nil && !p.exited() {
		p.stop(g.t, 30*time.Second)
	}
}

func (g *group) kill9(i int) { g.procs[i].kill() }

func (g *group) groups() wire.Group {
	var r wire.GroupsReply
	resp, err := http.Post("http://"+g.meta+wire.PathMeta+wire.OpGroups, "application/json", strings.NewReader("{}"))
	if err != nil {
		return wire.Group{}
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Groups) == 0 {
		return wire.Group{}
	}
	return r.Groups[0]
}

// fileBlocks counts the distinct blocks the metaserver's slice lists of
// the file at path (on a mount) name.
func (g *group) fileBlocks(path string) int {
	g.t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		g.t.Fatal(err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	ids := map[uint64]bool{}
	for idx := uint32(0); int64(idx)*wire.ChunkSize < st.Size(); idx++ {
		body, _ := json.Marshal(wire.ReadChunkReq{Ino: ino, Index: idx})
		resp, err := http.Post("http://"+g.meta+wire.PathMeta+wire.OpReadChunk, "application/json", bytes.NewReader(body))
		if err != nil {
			g.t.Fatal(err)
		}
		var r wire.ReadChunkReply
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			g.t.Fatalf("readchunk %d/%d: %d, %v", ino, idx, resp.StatusCode, err)
		}
		for _, s := range r.Slices {
			ids[s.ID] = true
		}
	}
	return len(ids)
}

// waitInSync waits until the in-sync set has n members.
func (g *group) waitInSync(n int, d time.Duration) {
	g.t.Helper()
	eventually(g.t, d, fmt.Sprintf("%d members in sync", n), func() bool { return len(g.groups().ISR) == n })
}

// inventory lists member i's blocks (id and size) through its API; nil
// when the member does not answer (yet).
func (g *group) inventory(i int) []wire.BlockInfo {
	g.t.Helper()
	var all []wire.BlockInfo
	var after uint64
	for {
		resp, err := http.Get(fmt.Sprintf("http://%s%s?after=%d&limit=10000", g.addrs[i], wire.PathBlocks, after))
		if err != nil {
			return nil
		}
		var page wire.BlockList
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil
		}
		for _, b := range page.Blocks {
			b.Mtime = 0
			all = append(all, b)
			after = b.ID
		}
		if !page.More {
			return all
		}
	}
}

// converge waits until the members list identical inventories (ids and
// sizes, compared whole) and returns it.
func (g *group) converge(d time.Duration, members ...int) []wire.BlockInfo {
	g.t.Helper()
	var want []wire.BlockInfo
	eventually(g.t, d, fmt.Sprintf("members %v hold identical inventories", members), func() bool {
		want = g.inventory(members[0])
		if want == nil {
			return false
		}
		for _, i := range members[1:] {
			if !slices.Equal(g.inventory(i), want) {
				return false
			}
		}
		return true
	})
	return want
}

// blockFiles counts the block files under member i's directory.
func (g *group) blockFiles(i int) int {
	n := 0
	filepath.WalkDir(filepath.Join(g.dirs[i], "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}

// TestReplicatedGroup runs `reelfs meta`, three `reelfs chunk` of group 1
// and a separate `reelfs mount`, and puts the group through a member
// killed in the middle of a large copy, members stopped while files come
// and go, two of three members lost, an empty replacement disk, and a
// member at its disk reserve. Every file must read back with its sha256
// and every member must end up holding exactly the same blocks.
func TestReplicatedGroup(t *testing.T) {
	needFUSE(t)
	g := startGroup(t, 3)
	mnt := filepath.Join(g.dir, "mnt")
	m := startMount(t, g.cl, mnt)
	src := filepath.Join(g.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}

	// 1. kill -9 of one member during a 1 GiB copy through the mount: the
	// copy completes (the member leaves the in-sync set), sha256 equal;
	// restarted, it catches up to the same inventory.
	big := filepath.Join(src, "big.bin")
	bigSum := writeRandomFile(t, big, 1<<30, 1)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		out, err := exec.Command("cp", big, filepath.Join(mnt, "big.bin")).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		done <- err
	}()
	time.Sleep(3 * time.Second)
	g.kill9(2)
	killedAt := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("cp of 1 GiB across a kill -9 of a member: %v\nmount log:\n%s", err, tail(m.log.String(), 4000))
	}
	t.Logf("1 GiB cp with member 3 killed at %v took %v", killedAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if got := sha256File(t, filepath.Join(mnt, "big.bin")); got != bigSum {
		t.Fatal("1 GiB file read back through the mount differs")
	}
	g.start(2)
	catchStart := time.Now()
	g.converge(2*time.Minute, 0, 1, 2)
	// The big file's blocks: 256 full ones, plus the partial block each
	// periodic commit (about twice a second) cut during the copy.
	bigBlocks := g.fileBlocks(filepath.Join(mnt, "big.bin"))
	if bigBlocks < 256 || bigBlocks > 256+2*int(time.Since(start)/time.Second)+2 {
		t.Fatalf("the 1 GiB file is in %d blocks, want 256 plus at most two per second of the copy", bigBlocks)
	}
	g.waitInSync(3, time.Minute)
	t.Logf("killed member caught up in %v", time.Since(catchStart).Round(time.Millisecond))

	// 2. One member stopped while 1,000 files are written and 500
	// deleted; restarted, it converges and the deleted blocks are gone
	// from its disk too.
	g.stop(1)
	g.waitInSync(2, 30*time.Second)
	small := filepath.Join(mnt, "small")
	if err := os.MkdirAll(small, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for i := 0; i < 1000; i++ {
		data := bytes.Repeat([]byte(fmt.Sprintf("file %d;", i)), 100+i)
		name := filepath.Join(small, fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatalf("write %s with a member stopped: %v", name, err)
		}
		if i%2 == 1 {
			sums[name] = fmt.Sprint(len(data))
		}
	}
	for i := 0; i < 1000; i += 2 {
		if err := os.Remove(filepath.Join(small, fmt.Sprintf("f%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	g.start(1)
	inv := g.converge(2*time.Minute, 0, 1, 2)
	// The deleted files' blocks leave the deletion queue once the healthy
	// members deleted them; the member that was away deletes them from
	// its peers' binlogs. The big file's blocks plus 500 small files.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		inv = g.converge(time.Minute, 0, 1, 2)
		files := []int{g.blockFiles(0), g.blockFiles(1), g.blockFiles(2)}
		if len(inv) == bigBlocks+500 && files[0] == len(inv) && files[1] == len(inv) && files[2] == len(inv) {
			break
		}
		if time.Now().After(deadline) {
			out, _, _ := g.cl.cli("status")
			t.Fatalf("deleted blocks not gone after 2m: inventory %d blocks, files on disk %v, want %d\n%s",
				len(inv), files, bigBlocks+500, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	g.waitInSync(3, time.Minute)

	// 3. Two of three members killed: every file still reads back from
	// the survivor.
	g.kill9(0)
	g.kill9(1)
	back := filepath.Join(g.dir, "back.bin")
	g.cl.mustCLI("get", "/big.bin", back)
	if sha256File(t, back) != bigSum {
		t.Fatal("1 GiB file read from the last member differs")
	}
	for name, size := range sums {
		b, err := os.ReadFile(name)
		if err != nil || fmt.Sprint(len(b)) != size {
			t.Fatalf("read %s from the last member: %v", name, err)
		}
	}
	g.start(0)
	g.start(1)
	g.converge(time.Minute, 0, 1, 2)
	g.waitInSync(3, time.Minute)

	// 4. An empty replacement for member 2 (new disk, same group, same
	// address): it fills from its peers by inventory and becomes in-sync;
	// the dead member's record is retired with rmmember.
	oldID := strings.TrimSpace(readFile(t, filepath.Join(g.dirs[1], "id")))
	g.stop(1)
	g.dirs[1] = filepath.Join(g.dir, "c2-new")
	g.start(1)
	fillStart := time.Now()
	g.converge(2*time.Minute, 0, 1, 2)
	g.cl.mustCLI("rmmember", "1", oldID)
	g.waitInSync(3, time.Minute)
	t.Logf("empty replacement filled %d blocks in %v", len(inv), time.Since(fillStart).Round(time.Millisecond))
	out := g.cl.mustCLI("status")
	if strings.Contains(out, oldID) || strings.Count(out, "in-sync") < 3 {
		t.Fatalf("status after the replacement:\n%s", out)
	}

	// 5. Bytes flipped in block files of one member: reads through a
	// fresh mount client and over HTTP stay correct, and the scrubber
	// reports and repairs every damaged copy from a peer.
	g.stop(0)
	g.extra[0] = []string{"--scrub-rate", "1000000000", "--scrub-pause", "1s"}
	var damaged []string
	filepath.WalkDir(filepath.Join(g.dirs[0], "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(damaged) < 5 {
			if fi, _ := d.Info(); fi != nil && fi.Size() > 1<<20 {
				damaged = append(damaged, p)
			}
		}
		return nil
	})
	for _, p := range damaged {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("DAMAGED BY THE TEST"), 12345)
		f.Close()
	}
	g.start(0)
	web := freeAddr(t)
	startDaemon(t, "httpd", "--listen", web, "--meta", g.meta)
	eventually(t, 30*time.Second, "httpd serves big.bin", func() bool {
		resp, err := http.Get("http://" + web + "/big.bin")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		out, err := os.Create(back)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		_, err = io.Copy(out, resp.Body)
		return err == nil && resp.StatusCode == 200
	})
	if sha256File(t, back) != bigSum {
		t.Fatal("big.bin over HTTP differs with damaged copies on one member")
	}
	g.cl.mustCLI("get", "/big.bin", back)
	if sha256File(t, back) != bigSum {
		t.Fatal("big.bin read by a fresh client differs with damaged copies on one member")
	}
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0) // best effort: the mount reads from the members again
	if sha256File(t, filepath.Join(mnt, "big.bin")) != bigSum {
		t.Fatal("big.bin read through the mount differs with damaged copies on one member")
	}
	var rep wire.Member
	eventually(t, time.Minute, "the scrubber repaired every damaged copy", func() bool {
		resp, err := http.Get("http://" + g.addrs[0] + wire.PathStatus)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&rep) == nil && rep.Scrub != nil &&
			rep.Scrub.Repaired >= uint64(len(damaged)) && rep.Scrub.Passes > 0
	})
	t.Logf("scrub report after damaging %d copies: %+v", len(damaged), *rep.Scrub)
	for _, p := range damaged {
		rel, _ := filepath.Rel(g.dirs[0], p)
		if readFile(t, p) != readFile(t, filepath.Join(g.dirs[2], rel)) {
			t.Fatalf("repaired %s differs from the peer's copy", rel)
		}
	}

	// 6. A member at its disk reserve leaves the write quorum; writes go
	// on to the other two; with a second one full they fail with a clear
	// error, and nothing acknowledged is lost.
	g.stop(2)
	g.extra[2] = []string{"--reserve", "1000000000000000"}
	g.start(2)
	g.waitInSync(2, 30*time.Second)
	f2 := filepath.Join(src, "f2.bin")
	f2Sum := writeRandomFile(t, f2, 20<<20, 2)
	g.cl.mustCLI("put", f2, "/f2.bin")
	g.stop(1)
	g.extra[1] = []string{"--reserve", "1000000000000000"}
	g.start(1)
	g.waitInSync(1, 30*time.Second)
	_, errOut, code := g.cl.cli("put", f2, "/f3.bin")
	if code == 0 || !strings.Contains(errOut, "min-copies") {
		t.Fatalf("put to a group with one writable member: exit %d, %s", code, errOut)
	}
	g.cl.mustCLI("get", "/f2.bin", back)
	if sha256File(t, back) != f2Sum {
		t.Fatal("f2 differs after the group filled up")
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServerGroupOfThree: `reelfs server --chunkservers 3` runs a group
// of three in one process; a put lands on all three.
func TestServerGroupOfThree(t *testing.T) {
	c := startCluster(t, clusterOpts{chunkservers: 3})
	src := filepath.Join(c.dir, "f")
	sum := writeRandomFile(t, src, 10<<20+7, 3)
	c.mustCLI("put", src, "/f")
	out := c.mustCLI("status")
	if strings.Count(out, "in-sync") < 4 { // the group line and three members
		t.Fatalf("status of a group of three:\n%s", out)
	}
	for _, addr := range c.chunks {
		resp, err := http.Get("http://" + addr + wire.PathStatus)
		if err != nil {
			t.Fatal(err)
		}
		var m wire.Member
		json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if m.Blocks != 3 {
			t.Fatalf("member %s holds %d blocks after a 3-block put, want 3", addr, m.Blocks)
		}
	}
	back := filepath.Join(c.dir, "back")
	c.mustCLI("get", "/f", back)
	if sha256File(t, back) != sum {
		t.Fatal("read back differs")
	}
}
