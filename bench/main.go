// Command bench measures reelfs against the physical limits of the same
// machine in one run: the local disk (dd, os.Create), go-fuse's loopback
// with and without kernel passthrough, and nginx serving the same file.
// Only ratios measured in the same run mean anything on a shared machine
// with a noisy disk, so every table puts the reelfs figure next to its
// baselines from the same run and checks the targets of the issues.
//
//	go run ./bench --bin $PWD/bin/reelfs [--sections data,fuse,http] [--quick]
//
// Each section starts its own `reelfs server` on free loopback ports with
// its --dir under --dir, and removes it when done. A benchmark that cannot
// run is reported as "not run: <why>", never as a number.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := benchMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	bin      string
	dir      string
	sections []string
	size     int64 // 0: the section's default
	out      string
	quick    bool
	keep     bool
	reps     int
	fuse     []string // the fuse section's benchmarks to run, with what they need
}

// sectionNames are the sections in the order they run.
func sectionNames() []string {
	return []string{"data", "replication", "fuse", "http", "live", "failover"}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sections, size string
	fs.StringVar(&o.bin, "bin", "", "path of the reelfs binary (required)")
	fs.StringVar(&o.dir, "dir", "", "directory for all data on the disk under test (default: a fresh dir under /var/tmp, removed at the end)")
	fs.StringVar(&sections, "sections", strings.Join(sectionNames(), ","), "comma-separated sections to run: data, replication, fuse, http, live, failover")
	fs.StringVar(&size, "size", "", "size of the big file, e.g. 512M or 2G (default: 1G for data and http, 2G for fuse)")
	fs.StringVar(&o.out, "out", "", "also write the markdown tables to this file")
	fs.BoolVar(&o.quick, "quick", false, "small sizes and counts: a smoke test of the driver, not a measurement")
	fs.BoolVar(&o.keep, "keep", false, "keep the data directory at the end")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of the sequential write and read benchmarks (median reported)")
	var fuse string
	fs.StringVar(&fuse, "fuse", strings.Join(fuseBenchNames(), ","), "comma-separated benchmarks of the fuse section: "+strings.Join(fuseBenchNames(), ", ")+" (read and seek imply write, ls and removes imply creates)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.bin == "" {
		return o, errors.New("--bin is required")
	}
	if !filepath.IsAbs(o.bin) {
		abs, err := filepath.Abs(o.bin)
		if err != nil {
			return o, err
		}
		o.bin = abs
	}
	for _, s := range strings.Split(sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(sectionNames(), s) {
			return o, fmt.Errorf("--sections: unknown section %q (want %s)", s, strings.Join(sectionNames(), ", "))
		}
		if !slices.Contains(o.sections, s) {
			o.sections = append(o.sections, s)
		}
	}
	if len(o.sections) == 0 {
		return o, errors.New("--sections: nothing to run")
	}
	if size != "" {
		n, err := parseSize(size)
		if err != nil {
			return o, fmt.Errorf("--size: %w", err)
		}
		if n < 16<<20 {
			return o, fmt.Errorf("--size: %s is below the 16 MiB minimum", size)
		}
		o.size = n
	}
	fb, err := parseFuseBenches(fuse)
	if err != nil {
		return o, fmt.Errorf("--fuse: %w", err)
	}
	o.fuse = fb
	if o.reps < 1 || o.reps > 20 {
		return o, fmt.Errorf("--reps: %d is outside 1..20", o.reps)
	}
	if o.quick {
		o.reps = 1
	}
	return o, nil
}

// parseSize parses a byte count with an optional binary suffix K, M, G.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB")
	t = strings.TrimSuffix(t, "B")
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

// runner holds what every section shares: the binary, the data
// directory, the sizes and the cleanups that must run even on failure.
type runner struct {
	opt      options
	log      *slog.Logger
	bin      string
	dir      string // all data lives here, on the disk under test
	modDir   string // the reelfs module, for building the loopbacks
	cold     bool   // caches can be dropped (root)
	cleanups []func()
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if st, err := os.Stat(opt.bin); err != nil || st.IsDir() {
		return fmt.Errorf("--bin %s: not a file (run make build): %v", opt.bin, err)
	}
	r := &runner{opt: opt, log: log, bin: opt.bin, cold: os.Geteuid() == 0}
	if r.modDir, err = moduleDir(ctx); err != nil {
		return err
	}
	created := false
	if opt.dir == "" {
		if r.dir, err = os.MkdirTemp("/var/tmp", "reelfs-bench-"); err != nil {
			return err
		}
		created = true
	} else {
		if r.dir, err = filepath.Abs(opt.dir); err != nil {
			return err
		}
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return err
		}
	}
	// nginx workers and the FUSE daemons must be able to reach the files.
	if err := os.Chmod(r.dir, 0o755); err != nil {
		return err
	}
	defer func() {
		r.cleanup()
		if created && !opt.keep {
			os.RemoveAll(r.dir)
		}
	}()

	header := r.header(args)
	fmt.Fprint(stdout, header)
	doc := header
	for _, s := range opt.sections {
		if ctx.Err() != nil {
			break
		}
		load := loadAvg()
		start := time.Now()
		log.Info("section start", "section", s, "load", load)
		var t *table
		switch s {
		case "data":
			t = r.dataSection(ctx)
		case "replication":
			t = r.replicationSection(ctx)
		case "fuse":
			t = r.fuseSection(ctx)
		case "http":
			t = r.httpSection(ctx)
		case "live":
			t = r.liveSection(ctx)
		case "failover":
			t = r.failoverSection(ctx)
		}
		r.cleanup()
		t.note("load average before: %s; after: %s; section took %s", load, loadAvg(), time.Since(start).Round(time.Second))
		md := t.markdown() + "\n"
		fmt.Fprint(stdout, md)
		doc += md
		if opt.out != "" {
			if err := os.WriteFile(opt.out, []byte(doc), 0o644); err != nil {
				log.Error("write --out", "err", err)
			}
		}
	}
	return ctx.Err()
}

// header describes the run: the exact command, date, machine, load.
func (r *runner) header(args []string) string {
	var b strings.Builder
	b.WriteString("## reelfs benchmark run\n\n")
	fmt.Fprintf(&b, "- command: `go run ./bench %s`\n", shellJoin(args))
	fmt.Fprintf(&b, "- date: %s\n", time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s\n", machine())
	fmt.Fprintf(&b, "- data dir: %s (%s)\n", r.dir, fsType(r.dir))
	fmt.Fprintf(&b, "- reelfs: %s at %s\n", r.bin, gitHead(r.modDir))
	caches := "cold reads drop the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`)"
	if !r.cold {
		caches = "not root: caches cannot be dropped, every \"cold\" figure is **warm**"
	}
	fmt.Fprintf(&b, "- caches: %s\n", caches)
	fmt.Fprintf(&b, "- ratio = reelfs / baseline; sequential write/read figures are the median of %d runs\n", r.opt.reps)
	if r.opt.quick {
		b.WriteString("- **--quick: smoke test sizes, not a measurement**\n")
	}
	fmt.Fprintf(&b, "- load average at start: %s\n\n", loadAvg())
	return b.String()
}

// shellJoin quotes args for a POSIX shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=,:+@%", c))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// atCleanup registers a cleanup; cleanup runs them newest first.
func (r *runner) atCleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *runner) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// dropCaches empties the page cache (and dentries and inodes) so that the
// next read comes from the disk. Without root it only syncs.
func (r *runner) dropCaches() error {
	syscall.Sync()
	if !r.cold {
		return nil
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// coldWord is how a table names a read after dropCaches.
func (r *runner) coldWord() string {
	if r.cold {
		return "cold"
	}
	return "warm (not root)"
}

func moduleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the bench from inside the reelfs module (make bench)")
	}
	return filepath.Dir(mod), nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		kernel = cString(u.Release[:])
	}
	return fmt.Sprintf("%d cores (%s), %s, Linux %s, %s", runtime.NumCPU(), model, mem, kernel, runtime.Version())
}

func cString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// fsType names the filesystem and device holding dir.
func fsType(dir string) string {
	out, err := exec.Command("findmnt", "-no", "FSTYPE,SOURCE", "--target", dir).Output()
	if err != nil {
		return "filesystem unknown"
	}
	return strings.Join(strings.Fields(string(out)), " on ")
}

func gitHead(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	s := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " + uncommitted changes"
	}
	return s
}
