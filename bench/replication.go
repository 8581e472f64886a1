package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// replicationSection is issue 10: the same workloads against a group of
// two chunkservers (every block on both: 2 copies) and a group of one (1
// copy), in the same run. Both copies share this machine's one disk, so
// half the 1-copy write figure is the physical bound of 2 copies.
func (r *runner) replicationSection(ctx context.Context) *table {
	t := &table{title: "replication (issue 10): 2 copies vs 1 copy, same machine, same run", baselines: []string{"1 copy"}}
	size := r.sizeFor(1 << 30)
	src, err := r.makeSource(ctx, "repl-src.bin", size)
	if err != nil {
		t.notRun = "make source file: " + err.Error()
		return t
	}
	defer os.Remove(src.path)
	var one, two *cluster
	err1 := t.setup("reelfs server --chunkservers 1 --mount", func() error {
		var err error
		one, err = r.startClusterN(ctx, "repl-1copy", false, filepath.Join(r.dir, "mnt-1copy"), 1)
		return err
	})
	err2 := t.setup("reelfs server --chunkservers 2 --mount", func() error {
		var err error
		two, err = r.startClusterN(ctx, "repl-2copies", false, filepath.Join(r.dir, "mnt-2copies"), 2)
		return err
	})
	pair := func(name string, goal *target, measure func(c *cluster) value) {
		rw := row{name: name, goal: goal}
		if two != nil {
			rw.reelfs = measure(two)
		} else {
			rw.reelfs = missing("%v", err2)
		}
		if one != nil {
			rw.base = []value{measure(one)}
		} else {
			rw.base = []value{missing("%v", err1)}
		}
		t.add(rw)
	}

	// (1) reelfs put (syncs) and (2) dd through the mount, conv=fsync:
	// reps alternate between the clusters so drift of the shared disk
	// hits both alike.
	reps := r.opt.reps
	putW := map[*cluster]*series{one: {}, two: {}}
	ddW := map[*cluster]*series{one: {}, two: {}}
	for i := range reps {
		for _, c := range []*cluster{one, two} {
			if c == nil || ctx.Err() != nil {
				continue
			}
			putW[c].add(r.timedWrite(src, func() (time.Duration, error) {
				syscall.Sync()
				res, err := r.runEnv(ctx, 10*time.Minute, nil, c.env(), r.bin, "put", src.path, fmt.Sprintf("/put%d.bin", i))
				return res.elapsed, err
			}, size))
			out := filepath.Join(c.mount, fmt.Sprintf("dd%d.bin", i))
			ddW[c].add(r.timedWrite(src, func() (time.Duration, error) {
				syscall.Sync()
				return r.dd(ctx, size, "if="+src.path, "of="+out, "bs=1M", "conv=fsync")
			}, size))
		}
		r.log.Info("replication: writes", "rep", i+1)
	}
	pair(fmt.Sprintf("reelfs put %s (syncs), MB/s", fmtBytes(size)), ratioAtLeast(0.45, 0),
		func(c *cluster) value { return putW[c].value("MB/s") })
	pair(fmt.Sprintf("dd write %s through the mount, conv=fsync, MB/s", fmtBytes(size)), ratioAtLeast(0.45, 0),
		func(c *cluster) value { return ddW[c].value("MB/s") })

	// (3) 64 KiB files written then sync(2), through the mount.
	n := r.count(2000, 50)
	content := make([]byte, n*64<<10)
	for i := range content {
		content[i] = byte(i*7 + i/4096)
	}
	pair(fmt.Sprintf("%d files of 64 KiB written + sync through the mount, files/s", n), nil, func(c *cluster) value {
		return smallWrite(ctx, filepath.Join(c.mount, "small"), content, 64<<10, 5*time.Minute)
	})

	// (4) cold sequential read and (5) cold 1 MiB seeks of the dd file
	// through a freshly started mount (page cache dropped).
	offs := seekOffsets(r.count(100, 10), size, 1<<20)
	type readResult struct {
		seq      value
		p50, p99 value
	}
	reads := map[*cluster]readResult{}
	for _, c := range []*cluster{one, two} {
		if c == nil || ctx.Err() != nil {
			continue
		}
		var res readResult
		path := filepath.Join(c.mount, "dd0.bin")
		if err := c.restartCold(ctx); err != nil {
			res.seq = missing("restart: %v", err)
		} else if d, err := r.dd(ctx, size, "if="+path, "of=/dev/null", "bs=1M"); err != nil {
			res.seq = missing("%v", err)
		} else {
			res.seq = got(mbps(size, d), "MB/s")
		}
		lat, err := r.coldSeeks(ctx, c, path, offs, src)
		if err != nil {
			res.p50, res.p99 = missing("%v", err), missing("%v", err)
		} else {
			res.p50, res.p99 = got(ms(percentile(lat, 50)), "ms"), got(ms(percentile(lat, 99)), "ms")
		}
		reads[c] = res
	}
	readOf := func(c *cluster, f func(readResult) value) value {
		if res, ok := reads[c]; ok {
			return f(res)
		}
		return missing("not measured")
	}
	pair(fmt.Sprintf("%s sequential read of the dd file through the mount, MB/s", r.coldWord()), ratioAtLeast(0.8, 0),
		func(c *cluster) value { return readOf(c, func(x readResult) value { return x.seq }) })
	pair(fmt.Sprintf("%d random 1 MiB preads after a %s restart, p50 ms", len(offs), r.coldWord()), nil,
		func(c *cluster) value { return readOf(c, func(x readResult) value { return x.p50 }) })
	pair(fmt.Sprintf("%d random 1 MiB preads after a %s restart, p99 ms", len(offs), r.coldWord()), ratioAtMost(1.5, 0),
		func(c *cluster) value { return readOf(c, func(x readResult) value { return x.p99 }) })
	t.note("2 copies: `reelfs server --chunkservers 2` (min-copies 2: a PUT is answered once both members fsync'd the block); 1 copy: `--chunkservers 1`. Both copies share one disk, so 0.5x is the physical bound of the write rows.")
	t.note("writes alternate between the clusters, %d reps each, median; reads use the first dd file after a restart with the page cache dropped", reps)
	return t
}

// coldSeeks restarts c with the page cache dropped and times one 1 MiB
// pread per offset of path, checking the bytes against src.
func (r *runner) coldSeeks(ctx context.Context, c *cluster, path string, offs []int64, src source) ([]time.Duration, error) {
	if err := c.restartCold(ctx); err != nil {
		return nil, err
	}
	return timedPreads(ctx, path, offs, src)
}
