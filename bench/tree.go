package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// treeRows is issue 16's tree copy: `reelfs put -r` and `get -r` of a tree
// of many small files (2,000 of 64 KiB) against `cp -r` on the local disk,
// in the same run, plus a re-run of put -r that finds every file
// identical. Both sides end durable: put -r fsyncs each file on the write
// quorum; cp -r is followed by sync.
func (r *runner) treeRows(ctx context.Context, t *table, c *cluster, cerr error) {
	n, size := r.count(2000, 200), 64<<10
	src := filepath.Join(r.dir, "tree-src")
	defer os.RemoveAll(src)
	want, err := makeTree(src, n, size)
	name := fmt.Sprintf("tree of %d files of %s: ", n, fmtBytes(int64(size)))
	if err != nil {
		t.add(row{name: name + "put -r", reelfs: missing("make tree: %v", err), base: []value{missing("make tree: %v", err)}})
		return
	}
	noReelfs := func() value { return missing("%v", cerr) }
	limit := 10 * time.Minute
	// timed runs one command (then sync) and turns its time into files/s.
	timed := func(env []string, argv ...string) (float64, error) {
		res, err := r.runEnv(ctx, limit, nil, env, argv[0], argv[1:]...)
		if err != nil {
			return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv[:2], " "), err, tail(res.stderr, 3))
		}
		start := time.Now()
		if _, err := r.run(ctx, time.Minute, nil, "sync"); err != nil {
			return 0, err
		}
		return perSecond(n, res.elapsed+time.Since(start)), nil
	}
	var cpIn, putIn, again, cpOut, getOut series
	for i := range r.opt.reps {
		if ctx.Err() != nil {
			break
		}
		dst := filepath.Join(r.dir, fmt.Sprintf("tree-cp-%d", i))
		cpIn.add(timed(nil, "cp", "-r", src, dst))
		os.RemoveAll(dst)
		if c == nil {
			continue
		}
		remote := fmt.Sprintf("/tree%d", i)
		putIn.add(timed(c.env(), r.bin, "put", "-r", src, remote, "--progress=false"))
		again.add(timed(c.env(), r.bin, "put", "-r", src, remote, "--progress=false"))
		r.log.Info("data: tree in", "rep", i+1, "cp_files_per_s", last(cpIn.xs), "put_r_files_per_s", last(putIn.xs), "rerun_files_per_s", last(again.xs))
	}
	// out: from a cold page cache, the tree put above back to local disk
	for i := range r.opt.reps {
		if ctx.Err() != nil || c == nil || putIn.err != nil {
			break
		}
		cpDst, getDst := filepath.Join(r.dir, "tree-cp-out"), filepath.Join(r.dir, "tree-get-out")
		r.dropCaches()
		cpOut.add(timed(nil, "cp", "-r", src, cpDst))
		os.RemoveAll(cpDst)
		r.dropCaches()
		getOut.add(timed(c.env(), r.bin, "get", "-r", "/tree0", getDst, "--progress=false"))
		if i == 0 && getOut.err == nil {
			// a fast but wrong copy must not count: check every file once
			if err := checkTree(getDst, want); err != nil {
				getOut.err = err
			}
		}
		os.RemoveAll(getDst)
		r.log.Info("data: tree out", "rep", i+1, "cp_files_per_s", last(cpOut.xs), "get_r_files_per_s", last(getOut.xs))
	}
	rows := []row{
		{name: name + "reelfs put -r vs cp -r into the local disk (+ sync), files/s", reelfs: putIn.value("files/s"), base: []value{cpIn.value("files/s")}},
		{name: name + "reelfs put -r again, every file identical (size + sha256), files/s", reelfs: again.value("files/s"), base: []value{cpIn.value("files/s")}},
		{name: name + fmt.Sprintf("reelfs get -r vs cp -r out of the local disk, %s, files/s", r.coldWord()), reelfs: getOut.value("files/s"), base: []value{cpOut.value("files/s")}},
	}
	for _, x := range rows {
		if c == nil {
			x.reelfs = noReelfs()
		}
		t.add(x)
	}
	t.note("trees: %d files of %s in 20 directories, random bytes; `reelfs put -r`/`get -r` with the default 8 files in flight, each file fsynced on both members; `cp -r` then `sync`; the time of sync is counted on both sides; get -r output checked once by sha256", n, fmtBytes(int64(size)))
}

// makeTree writes n files of size random bytes under dir in 20
// directories and returns their sha256 by relative path.
func makeTree(dir string, n, size int) (map[string][32]byte, error) {
	r := rand.New(rand.NewPCG(16, 2000))
	sums := make(map[string][32]byte, n)
	b := make([]byte, size)
	for i := range n {
		for j := 0; j+8 <= len(b); j += 8 {
			v := r.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		rel := filepath.Join(fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%05d.bin", i))
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		sums[rel] = sha256.Sum256(b)
	}
	return sums, nil
}

// checkTree compares the files under dir with want.
func checkTree(dir string, want map[string][32]byte) error {
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sha256.Sum256(b) != want[rel] {
			return fmt.Errorf("get -r: %s differs from what was put", rel)
		}
		seen++
		return nil
	})
	if err == nil && seen != len(want) {
		err = fmt.Errorf("get -r brought %d files, want %d", seen, len(want))
	}
	return err
}
