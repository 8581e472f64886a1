package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fsTarget is one place the fuse benchmarks run against: the reelfs
// mount, the local disk, or a go-fuse loopback mount of the local disk.
type fsTarget struct {
	name  string
	root  string                          // benchmark files go here
	cold  func(ctx context.Context) error // unmount, drop caches, mount again
	check func() error                    // the mount is still there
	err   error                           // setup failed: nothing is measured
	sep   *sepMount                       // the separate mount's process, if it is one
}

// ready returns why the target cannot be measured now, or nil. A vanished
// FUSE mount must never turn into a measurement of the bare directory
// underneath.
func (t *fsTarget) ready() error {
	if t.err != nil {
		return t.err
	}
	if t.check != nil {
		return t.check()
	}
	return nil
}

// loopMount is a go-fuse loopback daemon mounting orig at mnt.
type loopMount struct {
	r         *runner
	name, bin string
	mnt, orig string
	proc      *child
	started   int
}

func (m *loopMount) start(ctx context.Context) error {
	if err := forceUnmount(m.mnt); err != nil {
		return err
	}
	m.started++
	logPath := filepath.Join(m.r.dir, fmt.Sprintf("%s-%d.log", m.name, m.started))
	p, err := startChild(m.name, logPath, "", nil, m.bin, "-q", m.mnt, m.orig)
	if err != nil {
		return err
	}
	m.proc = p
	if err := waitMount(ctx, m.mnt, true, 30*time.Second, p); err != nil {
		m.stop()
		return err
	}
	return nil
}

// stop asks the daemon to unmount (SIGTERM) and lazily unmounts whatever
// it left behind.
func (m *loopMount) stop() error {
	var err error
	if m.proc != nil {
		err = m.proc.stop(30 * time.Second)
		m.proc = nil
	}
	if uerr := forceUnmount(m.mnt); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

func (m *loopMount) cold(ctx context.Context) error {
	if err := m.stop(); err != nil {
		return err
	}
	if err := m.r.dropCaches(); err != nil {
		return err
	}
	return m.start(ctx)
}

func mountCheck(mnt string) func() error {
	return func() error {
		ok, err := isFuseMounted(mnt)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is no longer mounted", mnt)
		}
		return nil
	}
}

// Indexes of the fuse section's targets; the first three are the
// baselines, in the table's column order.
const (
	tLocal = iota
	tLoopPT
	tLoopNoPT
	tReelfs    // reelfs server --mount: the mount in the server's process
	tReelfsSep // reelfs server and a separate reelfs mount process
	nTargets
)

// fuseTargets sets up the five targets. A target that fails to come up
// carries its error; the others still run.
func (r *runner) fuseTargets(ctx context.Context) []*fsTarget {
	mnt := filepath.Join(r.dir, "mnt")
	ts := make([]*fsTarget, nTargets)

	local := filepath.Join(r.dir, "local")
	ts[tLocal] = &fsTarget{name: "local disk", root: local, cold: func(context.Context) error { return r.dropCaches() }}
	os.RemoveAll(local)
	if err := os.MkdirAll(local, 0o755); err != nil {
		ts[tLocal].err = err
	}
	r.atCleanup(func() { os.RemoveAll(local) })

	loop := func(idx int, name, pkg string) {
		t := &fsTarget{name: name, root: filepath.Join(mnt, name)}
		ts[idx] = t
		bin := filepath.Join(r.dir, name+".bin")
		if res, err := r.runEnv(ctx, 5*time.Minute, nil, nil, "go", "build", "-o", bin, pkg); err != nil {
			t.err = fmt.Errorf("build %s: %v %s", pkg, err, tail(res.stderr, 300))
			return
		}
		m := &loopMount{r: r, name: name, bin: bin, mnt: t.root, orig: filepath.Join(r.dir, name+"-orig")}
		os.RemoveAll(m.orig)
		for _, d := range []string{m.mnt, m.orig} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.err = err
				return
			}
		}
		r.atCleanup(func() {
			if err := m.stop(); err != nil {
				r.log.Warn("unmount", "mnt", m.mnt, "err", err)
			}
			os.RemoveAll(m.orig)
		})
		t.cold, t.check = m.cold, mountCheck(m.mnt)
		t.err = m.start(ctx)
	}
	loop(tLoopPT, "loopback-passthrough", "github.com/hanwen/go-fuse/v2/example/loopback")
	loop(tLoopNoPT, "loopback-nopassthrough", "./bench/loopback")

	t := &fsTarget{name: "reelfs", root: filepath.Join(mnt, "reelfs")}
	ts[tReelfs] = t
	c, err := r.startCluster(ctx, "fuse-cluster", false, t.root)
	if err != nil {
		t.err = fmt.Errorf("reelfs server --mount: %w", err)
	} else {
		t.cold, t.check = c.restartCold, mountCheck(t.root)
	}

	sep := &fsTarget{name: "reelfs (separate mount)", root: filepath.Join(mnt, "reelfs-separate")}
	ts[tReelfsSep] = sep
	if m, err := r.startSeparate(ctx, "fuse-separate", sep.root); err != nil {
		sep.err = err
	} else {
		sep.cold, sep.check, sep.sep = m.restartCold, mountCheck(sep.root), m
	}
	return ts
}

// fuseBenchNames are the fuse section's benchmarks in the order they run.
func fuseBenchNames() []string {
	return []string{"write", "read", "seek", "creates", "ls", "small", "removes"}
}

// parseFuseBenches parses --fuse: a comma-separated subset of
// fuseBenchNames, completed with what each needs (read and seek use
// write's files, ls and removes the creates' directories).
func parseFuseBenches(list string) ([]string, error) {
	need := map[string]string{"read": "write", "seek": "write", "ls": "creates", "removes": "creates"}
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(fuseBenchNames(), s) {
			return nil, fmt.Errorf("unknown benchmark %q (want %s)", s, strings.Join(fuseBenchNames(), ", "))
		}
		want[s] = true
		if n, ok := need[s]; ok {
			want[n] = true
		}
	}
	var out []string
	for _, s := range fuseBenchNames() {
		if want[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("nothing to run")
	}
	return out, nil
}

// fuseResults holds one figure per target for each benchmark.
type fuseResults map[string]*[nTargets]value

func (fr fuseResults) set(bench string, target int, v value) {
	if fr[bench] == nil {
		fr[bench] = &[nTargets]value{}
	}
	fr[bench][target] = v
}

// fuseSection is issue 6: the reelfs mount against the local disk and the
// two loopback mounts, every benchmark run across all four in turn so
// that drift of the disk hits them alike.
func (r *runner) fuseSection(ctx context.Context) *table {
	t := &table{title: "fuse (issue 6): the reelfs mount vs the local disk and go-fuse loopback",
		baselines: []string{"local disk", "loopback (passthrough)", "loopback (no passthrough)"}}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.notRun = "no /dev/fuse: " + err.Error()
		return t
	}
	size := r.sizeFor(2 << 30)
	src, err := r.makeSource(ctx, "fuse-src.bin", size)
	if err != nil {
		t.notRun = "make source file: " + err.Error()
		return t
	}
	r.atCleanup(func() { os.Remove(src.path) })
	ts := r.fuseTargets(ctx)
	for _, x := range ts {
		if x.err != nil {
			r.log.Warn("fuse target not available", "target", x.name, "err", x.err)
			x.err = t.setup(x.name, func() error { return x.err })
		}
	}
	fr := fuseResults{}
	each := func(bench string, f func(x *fsTarget) value) {
		for i, x := range ts {
			if ctx.Err() != nil {
				fr.set(bench, i, missing("interrupted"))
				continue
			}
			var v value
			if err := x.ready(); err != nil {
				v = missing("%v", err)
			} else {
				v = f(x)
			}
			r.log.Info("fuse", "bench", bench, "target", x.name, "value", v.String())
			fr.set(bench, i, v)
		}
	}

	// Sequential write and cold read, repeated; medians.
	writes := make([]series, nTargets)
	reads := make([]series, nTargets)
	file := func(rep int) string { return fmt.Sprintf("f%d.bin", rep) }
	runs := func(bench string) bool { return slices.Contains(r.opt.fuse, bench) }
	reps := r.opt.reps
	if !runs("write") {
		reps = 0
	}
	for rep := range reps {
		each("write", func(x *fsTarget) value {
			if err := src.warm(); err != nil {
				return missing("%v", err)
			}
			syscall.Sync()
			d, err := r.dd(ctx, size, "if="+src.path, "of="+filepath.Join(x.root, file(rep)), "bs=1M", "conv=fsync")
			if err != nil {
				return missing("%v", err)
			}
			return got(mbps(size, d), "MB/s")
		})
		each("read", func(x *fsTarget) value {
			if !runs("read") {
				return missing("not run")
			}
			if err := x.cold(ctx); err != nil {
				return missing("remount: %v", err)
			}
			if err := x.ready(); err != nil {
				return missing("%v", err)
			}
			d, err := r.dd(ctx, size, "if="+filepath.Join(x.root, file(rep)), "of=/dev/null", "bs=1M")
			if err != nil {
				return missing("%v", err)
			}
			return got(mbps(size, d), "MB/s")
		})
		for i := range ts {
			writes[i].addValue(fr["write"][i])
			reads[i].addValue(fr["read"][i])
			// Keep the last file for the seeks; the baselines' old copies go
			// to save disk (reelfs keeps its files: deleting them would start
			// its block GC under the next measurements).
			if rep > 0 && i != tReelfs && i != tReelfsSep && ts[i].ready() == nil {
				os.Remove(filepath.Join(ts[i].root, file(rep-1)))
			}
		}
	}
	if runs("write") {
		for i := range ts {
			fr.set("write", i, writes[i].value("MB/s"))
			fr.set("read", i, reads[i].value("MB/s"))
		}
	}
	lastFile := file(r.opt.reps - 1)

	// Random 1 MiB preads after a remount, the same offsets everywhere.
	nSeeks := r.count(200, 50)
	offsets := seekOffsets(nSeeks, size, 1<<20)
	var p99 [nTargets]value
	eachIf := func(bench, name string, f func(x *fsTarget) value) {
		if runs(bench) {
			each(name, f)
		}
	}
	eachIf("seek", "seek p50", func(x *fsTarget) value {
		lat, err := r.seeks(ctx, x, filepath.Join(x.root, lastFile), offsets, src)
		if err != nil {
			p99[indexOf(ts, x)] = missing("%v", err)
			return missing("%v", err)
		}
		p99[indexOf(ts, x)] = got(ms(percentile(lat, 99)), "ms")
		return got(ms(percentile(lat, 50)), "ms")
	})
	if runs("seek") {
		for i := range ts {
			if v := fr["seek p50"][i]; !v.ok() {
				p99[i] = v
			}
			fr.set("seek p99", i, p99[i])
		}
	}

	// Creates of empty files, 1 and 4 threads.
	nCreates := r.count(10000, 500)
	limit := 2 * time.Minute
	for _, threads := range []int{1, 4} {
		bench := fmt.Sprintf("creates %d", threads)
		eachIf("creates", bench, func(x *fsTarget) value {
			dir := filepath.Join(x.root, fmt.Sprintf("c%d", threads))
			if err := os.Mkdir(dir, 0o755); err != nil {
				return missing("%v", err)
			}
			done, d, err := createMany(ctx, nCreates, threads, limit, func(_ context.Context, i int) error {
				return createEmpty(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
			})
			return createValue(nCreates, done, d, err, limit)
		})
	}

	// ls -l of the 1-thread directory as the creates left it (the mount
	// knows every file, with attributes older than their timeout), then
	// after a remount.
	null, err := devNull()
	if err != nil {
		t.notRun = err.Error()
		return t
	}
	defer null.Close()
	eachIf("ls", "ls new", func(x *fsTarget) value {
		res, err := r.run(ctx, 2*time.Minute, null, "ls", "-l", filepath.Join(x.root, "c1"))
		if err != nil {
			return missing("%v", err)
		}
		return got(ms(res.elapsed), "ms")
	})
	eachIf("ls", "ls", func(x *fsTarget) value {
		if err := x.cold(ctx); err != nil {
			return missing("remount: %v", err)
		}
		if err := x.ready(); err != nil {
			return missing("%v", err)
		}
		res, err := r.run(ctx, 2*time.Minute, null, "ls", "-l", filepath.Join(x.root, "c1"))
		if err != nil {
			return missing("%v", err)
		}
		return got(ms(res.elapsed), "ms")
	})

	// 64 KiB files: write all then one sync; read back after a remount.
	const small = 64 << 10
	nSmall := min(r.count(2000, 100), int(size/small))
	content, err := src.at(0, nSmall*small)
	if err != nil {
		t.notRun = err.Error()
		return t
	}
	eachIf("small", "small write", func(x *fsTarget) value {
		return smallWrite(ctx, filepath.Join(x.root, "s64"), content, small, 3*time.Minute)
	})
	eachIf("small", "small read", func(x *fsTarget) value {
		if err := x.cold(ctx); err != nil {
			return missing("remount: %v", err)
		}
		if err := x.ready(); err != nil {
			return missing("%v", err)
		}
		return smallRead(ctx, filepath.Join(x.root, "s64"), content, small, 3*time.Minute)
	})

	// Removes of the creates' files: the 1-thread directory with 1
	// thread, the 4-thread one with 4 (after the remounts above, every
	// name is looked up again).
	for _, threads := range []int{1, 4} {
		bench := fmt.Sprintf("removes %d", threads)
		eachIf("removes", bench, func(x *fsTarget) value {
			dir := filepath.Join(x.root, fmt.Sprintf("c%d", threads))
			done, d, err := createMany(ctx, nCreates, threads, limit, func(_ context.Context, i int) error {
				return os.Remove(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
			})
			return createValue(nCreates, done, d, err, limit)
		})
	}

	// ls -l once more through a separate mount with xattrs off.
	var lsNoXattrs value
	if sep := ts[tReelfsSep]; !runs("ls") {
		lsNoXattrs = missing("not run")
	} else if sep.ready() != nil || sep.sep == nil {
		lsNoXattrs = missing("separate mount: %v", sep.ready())
	} else {
		lsNoXattrs = r.lsWithoutXattrs(ctx, sep.sep, filepath.Join(filepath.Dir(sep.root), "reelfs-noxattrs"), nCreates, null)
	}

	// goal is the target of `server --mount` (issue 6), sep that of the
	// separate mount (issue 15) where it differs.
	rows := []struct {
		bench, name string
		goal, sep   *target
		run         string // the --fuse benchmark that fills the row
	}{
		{"write", fmt.Sprintf("dd write %s bs=1M conv=fsync, MB/s", fmtBytes(size)), ratioAtLeast(0.8, tLoopNoPT), ratioAtLeast(1.0, tLoopNoPT), "write"},
		{"read", fmt.Sprintf("dd read %s bs=1M, %s after remount, MB/s", fmtBytes(size), r.coldWord()), ratioAtLeast(0.8, tLoopNoPT), ratioAtLeast(0.5, tLoopNoPT), "read"},
		{"seek p50", fmt.Sprintf("%d random 1 MiB preads after remount, p50", nSeeks), nil, nil, "seek"},
		{"seek p99", fmt.Sprintf("%d random 1 MiB preads after remount, p99", nSeeks), ratioAtMost(3, tLocal), nil, "seek"},
		{"creates 1", fmt.Sprintf("create %d empty files, 1 thread", nCreates), ratioAtLeast(0.9, tLoopNoPT), nil, "creates"},
		{"creates 4", fmt.Sprintf("create %d empty files, 4 threads", nCreates), ratioAtLeast(0.9, tLoopNoPT), nil, "creates"},
		{"ls new", fmt.Sprintf("ls -l of %d files just created, wall time", nCreates), ratioAtMost(0.4, tLoopNoPT), nil, "ls"},
		{"ls", fmt.Sprintf("ls -l of %d files after remount, wall time", nCreates), ratioAtMost(0.5, tLoopNoPT), nil, "ls"},
		{"small write", fmt.Sprintf("write %d files of 64 KiB + one sync", nSmall), ratioAtLeast(0.45, tLoopNoPT), ratioAtLeast(0.3, tLoopNoPT), "small"},
		{"small read", fmt.Sprintf("read %d files of 64 KiB after remount", nSmall), ratioAtLeast(0.45, tLoopNoPT), ratioAtLeast(0.4, tLoopNoPT), "small"},
		{"removes 1", fmt.Sprintf("remove %d empty files, 1 thread", nCreates), ratioAtLeast(0.2, tLoopNoPT), nil, "removes"},
		{"removes 4", fmt.Sprintf("remove %d empty files, 4 threads", nCreates), ratioAtLeast(0.2, tLoopNoPT), nil, "removes"},
	}
	for _, rw := range rows {
		if !runs(rw.run) {
			continue
		}
		vs := fr[rw.bench]
		if vs == nil {
			vs = &[nTargets]value{}
			for i := range vs {
				vs[i] = missing("interrupted")
			}
		}
		base := []value{vs[tLocal], vs[tLoopPT], vs[tLoopNoPT]}
		t.add(row{name: rw.name + " — `server --mount`", reelfs: vs[tReelfs], base: base, goal: rw.goal})
		sep := rw.sep
		if sep == nil {
			sep = rw.goal
		}
		t.add(row{name: rw.name + " — separate `mount`", reelfs: vs[tReelfsSep], base: base, goal: sep})
	}
	if vs := fr["ls new"]; vs != nil {
		t.add(row{name: fmt.Sprintf("ls -l of %d files just created, wall time — separate `mount --no-xattrs`", nCreates),
			reelfs: lsNoXattrs, base: []value{vs[tLocal], vs[tLoopPT], vs[tLoopNoPT]}, goal: ratioAtMost(0.4, tLoopNoPT)})
	}
	t.note("targets as run in turn per benchmark: local dir %s, go-fuse example/loopback (passthrough on when root), bench/loopback (CAP_PASSTHROUGH disabled), `reelfs server --mount` (the mount in the server's process), and `reelfs server` with a separate `reelfs mount` process (every call crosses TCP, as on a client machine)", ts[tLocal].root)
	t.note("\"after remount\": the daemon is stopped (reelfs: the whole server), the page cache dropped, the daemon started again; for the local disk only the cache is dropped")
	t.note("dd write/read: wall time, median of %d; source file random and in the page cache; preads and 64 KiB reads are checked against the source", r.opt.reps)
	t.note("creates: os.OpenFile(O_CREATE|O_EXCL)+Close in a fresh dir, bounded by %s; removes: os.Remove of the same files, the 1-thread directory with 1 thread, the 4-thread one with 4; 64 KiB files written one by one from one thread then sync(2)", limit)
	t.note("\"ls -l ... just created\": the 1-thread directory right after both create runs, without a remount (the attributes the creates returned are past their timeout)")
	return t
}

// addValue adds a measured value, or records why there is none.
func (s *series) addValue(v value) {
	if v.ok() {
		s.add(v.v, nil)
	} else {
		s.add(0, errors.New(v.why))
	}
}

func indexOf(ts []*fsTarget, x *fsTarget) int {
	for i, t := range ts {
		if t == x {
			return i
		}
	}
	return -1
}

// seekOffsets returns n offsets in [0, size-span] from a fixed seed, so
// every target and every run reads the same places.
func seekOffsets(n int, size, span int64) []int64 {
	rng := rand.New(rand.NewPCG(0x5eed, 0xf11e))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = rng.Int64N(size - span + 1)
	}
	return offs
}

// seeks remounts x and times one pread of len 1 MiB per offset.
func (r *runner) seeks(ctx context.Context, x *fsTarget, path string, offsets []int64, src source) ([]time.Duration, error) {
	if err := x.cold(ctx); err != nil {
		return nil, fmt.Errorf("remount: %w", err)
	}
	if err := x.ready(); err != nil {
		return nil, err
	}
	return timedPreads(ctx, path, offsets, src)
}

// timedPreads times one 1 MiB pread of path per offset, checking the
// bytes against src.
func timedPreads(ctx context.Context, path string, offsets []int64, src source) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(2 * time.Minute)
	lat := make([]time.Duration, 0, len(offsets))
	for _, off := range offsets {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, fmt.Errorf("stopped after %d of %d reads", len(lat), len(offsets))
		}
		start := time.Now()
		n, err := f.ReadAt(buf, off)
		lat = append(lat, time.Since(start))
		if err != nil {
			return nil, fmt.Errorf("pread at %d: %w (%d bytes)", off, err, n)
		}
		if err := src.equalAt(buf, off); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// smallWrite writes len(content)/size files of size bytes into dir, then
// calls sync(2) once; the figure covers both.
func smallWrite(ctx context.Context, dir string, content []byte, size int, limit time.Duration) value {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return missing("%v", err)
	}
	n := len(content) / size
	deadline := time.Now().Add(limit)
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return missing("stopped after %d of %d files (%s)", i, n, limit)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), content[i*size:(i+1)*size], 0o644); err != nil {
			return missing("%v", err)
		}
	}
	syscall.Sync()
	return smallValue(n, size, time.Since(start))
}

// smallRead reads the files of smallWrite back, then checks them.
func smallRead(ctx context.Context, dir string, content []byte, size int, limit time.Duration) value {
	n := len(content) / size
	bufs := make([][]byte, n)
	deadline := time.Now().Add(limit)
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return missing("stopped after %d of %d files (%s)", i, n, limit)
		}
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)))
		if err != nil {
			return missing("%v", err)
		}
		bufs[i] = b
	}
	d := time.Since(start)
	for i, b := range bufs {
		if string(b) != string(content[i*size:(i+1)*size]) {
			return missing("file %d: content differs from what was written", i)
		}
	}
	return smallValue(n, size, d)
}

func smallValue(n, size int, d time.Duration) value {
	return got(perSecond(n, d), fmt.Sprintf("files/s (%s MB/s)", fmtNum(mbps(int64(n)*int64(size), d))))
}
