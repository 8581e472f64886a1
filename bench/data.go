package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/client"
)

// sizeFor returns the big-file size of a section: --size, or def, or a
// small size under --quick.
func (r *runner) sizeFor(def int64) int64 {
	switch {
	case r.opt.size > 0:
		return r.opt.size
	case r.opt.quick:
		return 64 << 20
	}
	return def
}

// count returns n, or quick under --quick.
func (r *runner) count(n, quick int) int {
	if r.opt.quick {
		return quick
	}
	return n
}

// series collects repeated throughput figures; the first error wins.
type series struct {
	xs  []float64
	err error
}

func (s *series) add(x float64, err error) {
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.xs = append(s.xs, x)
}

// value is the median, or why there is none.
func (s *series) value(unit string) value {
	if s.err != nil {
		return missing("%v", s.err)
	}
	if len(s.xs) == 0 {
		return missing("no runs")
	}
	return got(median(s.xs), unit)
}

// dataSection is issue 2: sequential put and get through the reelfs CLI
// against dd on the local disk, and creates through the SDK.
func (r *runner) dataSection(ctx context.Context) *table {
	t := &table{title: "data (issue 2): CLI put/get and SDK creates vs the local disk", baselines: []string{"local disk"}}
	size := r.sizeFor(1 << 30)
	src, err := r.makeSource(ctx, "data-src.bin", size)
	if err != nil {
		t.notRun = "make source file: " + err.Error()
		return t
	}
	defer os.Remove(src.path)
	var c *cluster
	cerr := t.setup("reelfs server", func() error {
		var err error
		c, err = r.startCluster(ctx, "data-cluster", false, "")
		return err
	})
	noReelfs := func() value { return missing("%v", cerr) }

	// (1) sequential write: dd conv=fsync vs reelfs put (which syncs).
	ddOut := filepath.Join(r.dir, "dd.out")
	defer os.Remove(ddOut)
	var ddW, putW series
	for i := range r.opt.reps {
		if ctx.Err() != nil {
			break
		}
		ddW.add(r.timedWrite(src, func() (time.Duration, error) {
			os.Remove(ddOut)
			syscall.Sync()
			return r.dd(ctx, size, "if="+src.path, "of="+ddOut, "bs=1M", "conv=fsync")
		}, size))
		if c != nil {
			putW.add(r.timedWrite(src, func() (time.Duration, error) {
				syscall.Sync()
				res, err := r.runEnv(ctx, 10*time.Minute, nil, c.env(), r.bin, "put", src.path, fmt.Sprintf("/f%d.bin", i))
				return res.elapsed, err
			}, size))
		}
		r.log.Info("data: sequential write", "rep", i+1, "dd_MBps", last(ddW.xs), "put_MBps", last(putW.xs))
	}
	wr := row{name: fmt.Sprintf("sequential write %s (dd conv=fsync vs reelfs put), MB/s", fmtBytes(size)),
		reelfs: putW.value("MB/s"), base: []value{ddW.value("MB/s")}, goal: ratioAtLeast(0.5, 0)}
	if c == nil {
		wr.reelfs = noReelfs()
	}
	t.add(wr)

	// (2) sequential read from a cold cache into /dev/null.
	var ddR, getR series
	null, err := devNull()
	if err != nil {
		t.notRun = err.Error()
		return t
	}
	defer null.Close()
	for i := range r.opt.reps {
		if ctx.Err() != nil {
			break
		}
		if err := r.dropCaches(); err != nil {
			ddR.add(0, err)
		} else {
			d, err := r.dd(ctx, size, "if="+ddOut, "of=/dev/null", "bs=1M")
			ddR.add(mbps(size, d), err)
		}
		if c != nil && putW.err == nil {
			if err := r.dropCaches(); err != nil {
				getR.add(0, err)
			} else {
				res, err := r.runEnv(ctx, 10*time.Minute, null, c.env(), r.bin, "get", fmt.Sprintf("/f%d.bin", i), "-")
				getR.add(mbps(size, res.elapsed), err)
			}
		}
		r.log.Info("data: sequential read", "rep", i+1, "dd_MBps", last(ddR.xs), "get_MBps", last(getR.xs))
	}
	rd := row{name: fmt.Sprintf("sequential read %s, %s (dd vs reelfs get -, both to /dev/null), MB/s", fmtBytes(size), r.coldWord()),
		reelfs: getR.value("MB/s"), base: []value{ddR.value("MB/s")}, goal: ratioAtLeast(0.8, 0)}
	switch {
	case c == nil:
		rd.reelfs = noReelfs()
	case putW.err != nil:
		rd.reelfs = missing("nothing was put: %v", putW.err)
	default:
		// A fast but wrong get must not count: check the bytes once.
		if sum, err := r.getSum(ctx, c, "/f0.bin"); err != nil {
			rd.reelfs = missing("check of get output: %v", err)
		} else if sum != src.sum {
			rd.reelfs = missing("reelfs get returned different bytes (sha256 %s, want %s)", sum[:12], src.sum[:12])
		}
	}
	t.add(rd)

	// (3) creates of empty files, 4 goroutines, one directory.
	n := r.count(20000, 1000)
	limit := 2 * time.Minute
	cr := row{name: fmt.Sprintf("create+close %d empty files, 4 goroutines (SDK vs os.Create), files/s", n), goal: absAtLeast(10000, "files/s")}
	if c == nil {
		cr.reelfs = noReelfs()
	} else {
		cr.reelfs = r.sdkCreates(ctx, c, n, limit)
	}
	cr.base = []value{localCreates(ctx, filepath.Join(r.dir, "creates-local"), n, 4, limit)}
	t.add(cr)

	// (4) trees of small files: put -r / get -r vs cp -r.
	r.treeRows(ctx, t, c, cerr)
	t.note("write: wall time of `dd if=SRC of=DIR/dd.out bs=1M conv=fsync` vs `reelfs put SRC /fN.bin` (fsyncs; every block on both members of the group: 2 copies); SRC is random and in the page cache")
	t.note("read: page cache dropped before each; wall time of `dd if=DIR/dd.out of=/dev/null bs=1M` vs `reelfs get /fN.bin -` with stdout on /dev/null; get output checked once by sha256")
	t.note("creates: in-process client.New against the server's metaserver, Create(O_CREAT|O_EXCL)+Close; baseline os.OpenFile(O_CREATE|O_EXCL)+Close in a local dir; each bounded by %s", limit)
	return t
}

// last returns the newest figure of xs, or 0.
func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// timedWrite warms the source, then runs one write and converts its time.
func (r *runner) timedWrite(src source, write func() (time.Duration, error), size int64) (float64, error) {
	if err := src.warm(); err != nil {
		return 0, err
	}
	d, err := write()
	if err != nil {
		return 0, err
	}
	return mbps(size, d), nil
}

// getSum runs `reelfs get path -` and hashes its output.
func (r *runner) getSum(ctx context.Context, c *cluster, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, "get", path, "-")
	cmd.Env = append(os.Environ(), c.env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	h := sha256.New()
	_, cerr := io.Copy(h, out)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("reelfs get %s: %w", path, err)
	}
	if cerr != nil {
		return "", cerr
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// createMany calls create(ctx, i) for i in [0, n) from workers goroutines
// (worker w takes w, w+workers, ...) until done or limit passes. It
// returns the number created and the elapsed time; reaching the limit is
// not an error, any other failure is.
func createMany(ctx context.Context, n, workers int, limit time.Duration, create func(ctx context.Context, i int) error) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for w := range workers {
		g.Go(func() error {
			for i := w; i < n; i += workers {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if err := create(gctx, i); err != nil {
					return fmt.Errorf("create #%d: %w", i, err)
				}
				done.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	elapsed := time.Since(start)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		err = nil // the time bound ended the loop
	}
	return int(done.Load()), elapsed, err
}

// createValue turns a createMany result into a files/s figure.
func createValue(n, done int, d time.Duration, err error, limit time.Duration) value {
	if err != nil {
		return missing("%v", err)
	}
	if done == 0 {
		return missing("no file created within %s", limit)
	}
	v := got(perSecond(done, d), "files/s")
	if done < n {
		v.unit += fmt.Sprintf(" (only %d of %d within %s)", done, n, limit)
	}
	return v
}

// localCreates is the local-disk baseline of the creates benchmark.
func localCreates(ctx context.Context, dir string, n, workers int, limit time.Duration) value {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return missing("%v", err)
	}
	defer os.RemoveAll(dir)
	done, d, err := createMany(ctx, n, workers, limit, func(_ context.Context, i int) error {
		return createEmpty(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
	})
	return createValue(n, done, d, err, limit)
}

// createEmpty creates and closes one new empty file.
func createEmpty(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// sdkCreates creates n files in one directory through an in-process
// client, as an application linking the SDK would.
func (r *runner) sdkCreates(ctx context.Context, c *cluster, n int, limit time.Duration) value {
	cfg := client.DefaultConfig()
	cfg.Meta = c.meta
	cfg.Logger = slog.New(slog.DiscardHandler)
	cl, err := client.New(cfg)
	if err != nil {
		return missing("client.New: %v", err)
	}
	defer cl.Close()
	dir, err := cl.MkdirAll(ctx, "/creates", 0o755)
	if err != nil {
		return missing("MkdirAll /creates: %v", err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	done, d, err := createMany(ctx, n, 4, limit, func(ctx context.Context, i int) error {
		f, err := cl.Create(ctx, dir.Ino, fmt.Sprintf("f%06d", i), 0o644, uid, gid, os.O_CREATE|os.O_EXCL|os.O_WRONLY)
		if err != nil {
			return err
		}
		return f.Close(ctx)
	})
	return createValue(n, done, d, err, limit)
}
