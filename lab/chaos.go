package lab

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// ChaosDisk is the tmpfs size of each chunkserver in a chaos lab: small
// enough to fill in a moment, large enough for the workload.
const ChaosDisk = 768 << 20

// chaosReserve is the chunkservers' --reserve in a chaos lab.
const chaosReserve = 64 << 20

// ChaosEnv is the daemons' extra flags in a chaos lab: a small disk
// reserve to fill to, and a scrubber that passes every few seconds so
// flipped bytes are found without a read.
func ChaosEnv() []string {
	return []string{
		fmt.Sprintf("REELFS_CHUNK_FLAGS=--reserve %d --scrub-rate 134217728 --scrub-pause 5s", chaosReserve),
		"REELFS_META_FLAGS=--heartbeat-timeout 4s",
	}
}

// ChaosConfig is one run of the fault-injection suite.
type ChaosConfig struct {
	Duration time.Duration // how long faults are injected
	Seed     uint64
	Nemeses  int // faults at once (on different hosts); default 3
	Writers  int // SDK writers and as many writers through the mount; default 2
	Out      io.Writer
}

// ChaosResult is what a run measured.
type ChaosResult struct {
	Faults   map[string]int
	Recovery map[string][]time.Duration // per fault kind: from its start to the first write acknowledged
	Acked    int                        // acknowledged operations
	Failed   int                        // operations that returned an error (not acknowledged)
	Lost     int                        // acknowledged operations whose effect is missing
	Twice    int                        // effects present that nothing acknowledged or that were undone
	Checked  int                        // files read back whole
	Final    map[string]time.Duration   // after the last heal: write, converged, status healthy
	// ByTarget is Recovery per fault kind and what it hit ("kill meta
	// leader", "cut chunk"): a metaserver fault is a failover only when
	// it hit the leader.
	ByTarget map[string][]time.Duration
}

// TotalFaults is the number of faults injected.
func (r *ChaosResult) TotalFaults() int {
	n := 0
	for _, v := range r.Faults {
		n += v
	}
	return n
}

// fileState is what the ledger knows of one path.
type fileState struct {
	sum  []byte // marshaled sha256 state of the content, to append to
	size int64
	op   string    // the last acknowledged operation on the path
	at   time.Time // when it was acknowledged
}

// goneState is a path an acknowledged unlink or rename took away.
type goneState struct {
	op string
	at time.Time
}

// ledger records every acknowledged operation's effect by path. A path
// whose last operation failed is unknown: it may or may not have happened.
type ledger struct {
	mu      sync.Mutex
	files   map[string]fileState // must exist with this content
	gone    map[string]goneState // must not exist
	unknown map[string]bool
	acked   map[string]int // by op kind
	failed  int
	errs    map[string]int // first words of errors, for the summary
}

func newLedger() *ledger {
	return &ledger{files: map[string]fileState{}, gone: map[string]goneState{}, unknown: map[string]bool{},
		acked: map[string]int{}, errs: map[string]int{}}
}

func (l *ledger) ack(kind string, set map[string]*fileState, gone ...string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, st := range set {
		st.op, st.at = kind, now
		l.files[p] = *st
		delete(l.gone, p)
		delete(l.unknown, p)
	}
	for _, p := range gone {
		delete(l.files, p)
		delete(l.unknown, p)
		l.gone[p] = goneState{kind, now}
	}
	l.acked[kind]++
}

func (l *ledger) fail(err error, paths ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range paths {
		delete(l.files, p)
		delete(l.gone, p)
		l.unknown[p] = true
	}
	l.failed++
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	l.errs[msg]++
}

func (l *ledger) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func (l *ledger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, v := range l.acked {
		n += v
	}
	return n
}

// fsOps is what a writer does to the filesystem: through the SDK or
// through the mount.
type fsOps interface {
	create(ctx context.Context, p string, data []byte) error
	appendTo(ctx context.Context, p string, data []byte) error
	rename(ctx context.Context, from, to string) error
	remove(ctx context.Context, p string) error
}

type sdkOps struct{ c *client.Client }

func (s sdkOps) create(ctx context.Context, p string, data []byte) error {
	f, err := s.c.CreatePath(ctx, p, 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		f.Close(ctx)
		return err
	}
	return f.Close(ctx)
}

func (s sdkOps) appendTo(ctx context.Context, p string, data []byte) error {
	f, err := s.c.OpenPath(ctx, p, os.O_WRONLY)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(ctx, data, f.Size()); err != nil {
		f.Close(ctx)
		return err
	}
	return f.Close(ctx)
}

func (s sdkOps) rename(ctx context.Context, from, to string) error {
	return s.c.RenamePath(ctx, from, to)
}
func (s sdkOps) remove(ctx context.Context, p string) error { return s.c.RemovePath(ctx, p, false) }

// mountOps works on the FUSE mount of the client host; paths are the
// filesystem's, under root.
type mountOps struct{ root string }

func (m mountOps) write(p string, flags int, data []byte) error {
	f, err := os.OpenFile(filepath.Join(m.root, p), flags, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (m mountOps) create(_ context.Context, p string, data []byte) error {
	return m.write(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, data)
}

func (m mountOps) appendTo(_ context.Context, p string, data []byte) error {
	return m.write(p, os.O_WRONLY|os.O_APPEND, data)
}

func (m mountOps) rename(_ context.Context, from, to string) error {
	return os.Rename(filepath.Join(m.root, from), filepath.Join(m.root, to))
}

func (m mountOps) remove(_ context.Context, p string) error {
	return os.Remove(filepath.Join(m.root, p))
}

// payloadSize draws a file or append size: mostly small, some of a block
// or more (blocks are at most 4 MiB).
func payloadSize(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 65:
		return rng.IntN(64 << 10)
	case r < 95:
		return 64<<10 + rng.IntN(1<<20)
	default:
		return 1<<20 + rng.IntN(5<<20)
	}
}

// liveBudget bounds the bytes a writer keeps: past it, it unlinks rather
// than creates, so a long run does not fill the chunkservers' disks (four
// writers, about 64 MiB per member of a group, plus garbage not yet
// collected).
const liveBudget = 48 << 20

// writer runs creates, appends, renames and unlinks in dir until stop,
// at most maxOps, recording each acknowledged one in l.
func writer(ctx context.Context, ops fsOps, dir string, seed uint64, l *ledger, stop <-chan struct{}) {
	const maxOps = 200000
	rng := rand.New(rand.NewPCG(seed, 14))
	type live struct {
		path string
		st   fileState
	}
	var files []live
	liveBytes := func(fs []live) int64 {
		n := int64(0)
		for _, f := range fs {
			n += f.st.size
		}
		return n
	}
	buf := make([]byte, 6<<20)
	for i := 0; i < maxOps; i++ {
		select {
		case <-stop:
			return
		default:
		}
		octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		failedBefore := l.failures()
		op := rng.IntN(100)
		if liveBytes(files) > liveBudget && op < 65 {
			op = 82 + op%18 // the disks are small: unlink instead
		}
		switch {
		case op < 45 || len(files) < 4:
			p := fmt.Sprintf("%s/f%06d", dir, i)
			data := buf[:payloadSize(rng)]
			fillRandom(rng, data)
			if err := ops.create(octx, p, data); err != nil {
				l.fail(fmt.Errorf("create: %w", err), p)
				break
			}
			st := sumOf(nil, data)
			l.ack("create", map[string]*fileState{p: &st})
			files = append(files, live{p, st})
		case op < 65:
			k := rng.IntN(len(files))
			data := buf[:1+rng.IntN(256<<10)]
			fillRandom(rng, data)
			if err := ops.appendTo(octx, files[k].path, data); err != nil {
				l.fail(fmt.Errorf("append: %w", err), files[k].path)
				files = slices.Delete(files, k, k+1)
				break
			}
			st := sumOf(&files[k].st, data)
			l.ack("append", map[string]*fileState{files[k].path: &st})
			files[k].st = st
		case op < 82:
			k := rng.IntN(len(files))
			to := fmt.Sprintf("%s/r%06d", dir, i)
			if err := ops.rename(octx, files[k].path, to); err != nil {
				l.fail(fmt.Errorf("rename: %w", err), files[k].path, to)
				files = slices.Delete(files, k, k+1)
				break
			}
			l.ack("rename", map[string]*fileState{to: &files[k].st}, files[k].path)
			files[k].path = to
		default:
			k := rng.IntN(len(files))
			if err := ops.remove(octx, files[k].path); err != nil {
				l.fail(fmt.Errorf("unlink: %w", err), files[k].path)
			} else {
				l.ack("unlink", nil, files[k].path)
			}
			files = slices.Delete(files, k, k+1)
		}
		cancel()
		if failedBefore != l.failures() {
			// a dead mount or a full group fails at once: do not spin
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(rng.Uint32())
	}
}

// sumOf extends a saved sha256 state (nil: empty) with data.
func sumOf(prev *fileState, data []byte) fileState {
	h := sha256.New()
	size := int64(0)
	if prev != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(prev.sum); err != nil {
			panic(err) // states come from MarshalBinary below
		}
		size = prev.size
	}
	h.Write(data)
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err)
	}
	return fileState{sum: b, size: size + int64(len(data))}
}

func (st fileState) hex() string {
	h := sha256.New()
	h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.sum)
	return hex.EncodeToString(h.Sum(nil))
}

// target is a daemon of a host.
type target struct{ host, daemon string }

// nemesis injects faults at random until the deadline, one host at a
// time per nemesis, and heals each before it picks the next.
type nemesis struct {
	l     *Lab
	c     *client.Client
	out   io.Writer
	mu    sync.Mutex // protects busy, res, flipped
	busy  map[string]bool
	res   *ChaosResult
	flips map[string]bool // block file names flipped on some member (never two copies of one)
}

// kinds of faults and their weights.
var faultKinds = []struct {
	name   string
	weight int
}{{"kill", 30}, {"stop", 20}, {"cut", 20}, {"fill", 15}, {"flip", 15}}

func (n *nemesis) pick(rng *rand.Rand) (string, target) {
	w := rng.IntN(100)
	kind := faultKinds[len(faultKinds)-1].name
	for _, k := range faultKinds {
		if w < k.weight {
			kind = k.name
			break
		}
		w -= k.weight
	}
	var cands []target
	for _, h := range n.l.Hosts() {
		for _, d := range h.Daemons() {
			switch kind {
			case "fill", "flip":
				if h.Role != "chunk" {
					continue
				}
			case "kill", "stop":
				// consul's server is one; kill it rarely (one in three draws).
				if h.Role == "consul" && rng.IntN(3) != 0 {
					continue
				}
			case "cut":
				if d == "mount" || (h.Role == "consul" && rng.IntN(3) != 0) {
					continue // one candidate per host
				}
			}
			cands = append(cands, target{h.Name, d})
		}
	}
	return kind, cands[rng.IntN(len(cands))]
}

func (n *nemesis) logf(format string, args ...any) {
	fmt.Fprintf(n.out, "%s nemesis: "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

// run injects faults until deadline (at most 10000 of them).
func (n *nemesis) run(ctx context.Context, seed uint64, deadline time.Time) error {
	rng := rand.New(rand.NewPCG(seed, 41))
	for i := 0; i < 10000 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		kind, t := n.pick(rng)
		n.mu.Lock()
		if n.busy[t.host] {
			n.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n.busy[t.host] = true
		n.mu.Unlock()
		// The probe starts with the fault: what it measures is how long
		// writes stalled (a failover, a group that lost a member), not
		// just how long the fault was held.
		type probed struct {
			d   time.Duration
			err error
		}
		pch := make(chan probed, 1)
		pctx, pcancel := context.WithCancel(ctx)
		started := false
		begun := func() {
			started = true
			go func() {
				d, err := probe(pctx, n.c, fmt.Sprintf("/probe/%d-%d", seed, i), 3*time.Minute)
				pch <- probed{d, err}
			}()
		}
		class := n.class(t)
		healed, err := n.inject(rng, kind, t, begun)
		n.mu.Lock()
		n.busy[t.host] = false
		n.mu.Unlock()
		if err != nil || !healed || kind == "flip" {
			pcancel()
			if started {
				<-pch
			}
			if err != nil {
				return fmt.Errorf("nemesis: %s %s/%s: %w", kind, t.host, t.daemon, err)
			}
			if healed {
				n.mu.Lock()
				n.res.Faults[kind]++
				n.mu.Unlock()
			}
			continue
		}
		p := <-pch
		pcancel()
		if p.err != nil {
			return fmt.Errorf("nemesis: no write acknowledged within 3m of %s %s/%s: %w", kind, t.host, t.daemon, p.err)
		}
		n.logf("%s %s/%s: first write acknowledged %.2fs after the fault began", kind, t.host, t.daemon, p.d.Seconds())
		n.mu.Lock()
		n.res.Faults[kind]++
		n.res.Recovery[kind] = append(n.res.Recovery[kind], p.d)
		n.res.ByTarget[kind+" "+class] = append(n.res.ByTarget[kind+" "+class], p.d)
		n.mu.Unlock()
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	return nil
}

// class names what a fault on t hits: its daemon, and for a metaserver
// whether it leads (asked of the metaserver itself just before the
// fault; "meta ?" when it does not answer within a second).
func (n *nemesis) class(t target) string {
	if t.daemon != "meta" {
		return t.daemon
	}
	var addr string
	for _, h := range n.l.Hosts() {
		if h.Name == t.host {
			addr = h.Addr.String() + ":9400"
		}
	}
	hc := http.Client{Timeout: time.Second}
	resp, err := hc.Get("http://" + addr + wire.PathHA)
	if err != nil {
		return "meta ?"
	}
	defer resp.Body.Close()
	var ha wire.MetaHA
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ha) != nil {
		return "meta ?"
	}
	if ha.Leading {
		return "meta leader"
	}
	return "meta follower"
}

// hold sleeps between lo and hi seconds.
func hold(rng *rand.Rand, lo, hi float64) time.Duration {
	d := time.Duration((lo + rng.Float64()*(hi-lo)) * float64(time.Second))
	time.Sleep(d)
	return d
}

// inject applies one fault, calls begun, holds it and heals it; false
// when there was nothing to do (a daemon that does not run, no block to
// flip).
func (n *nemesis) inject(rng *rand.Rand, kind string, t target, begun func()) (bool, error) {
	switch kind {
	case "kill":
		pid := n.l.Pid(t.host, t.daemon)
		if pid == 0 {
			return false, nil
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return false, err
		}
		begun()
		if t.daemon == "mount" {
			// A killed FUSE server can hang in exit on requests to its own
			// mount; dropping the mount releases them, as an operator's
			// `reelfs umount` would.
			exec.Command("fusermount3", "-u", "-z", n.l.Mountpoint()).Run()
		}
		d := hold(rng, 0.5, 4)
		n.logf("kill -9 %s/%s, restarted after %.1fs", t.host, t.daemon, d.Seconds())
		// Gone means reaped, not only a zombie: a process whose leader
		// thread is a zombie while other threads still exit looks alive
		// to provision.sh's check ("already runs"; it happened twice in
		// 10-minute runs), and may still hold its port.
		waited := time.Now()
		for i := 0; exists(pid) && i < 600; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if exists(pid) {
			return false, fmt.Errorf("pid %d still there %.0fs after kill -9", pid, time.Since(waited).Seconds())
		}
		return true, n.l.Restart(t.host, t.daemon)
	case "stop":
		if err := n.l.Signal(t.host, t.daemon, syscall.SIGSTOP); err != nil {
			return false, nil
		}
		begun()
		d := hold(rng, 1, 6)
		n.logf("SIGSTOP %s/%s for %.1fs", t.host, t.daemon, d.Seconds())
		return true, n.l.Signal(t.host, t.daemon, syscall.SIGCONT)
	case "cut":
		if err := n.l.SetLink(t.host, false); err != nil {
			return false, err
		}
		begun()
		d := hold(rng, 1, 8)
		n.logf("link of %s down for %.1fs", t.host, d.Seconds())
		return true, n.l.SetLink(t.host, true)
	case "fill":
		dir := n.l.chunkDir(t.host)
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return false, err
		}
		free := int64(st.Bavail) * st.Bsize
		size := free - chaosReserve + 4<<20
		if size <= 0 {
			return false, nil
		}
		filler := filepath.Join(dir, "h14-fill")
		// The chunkserver writes meanwhile: a filler that runs out of
		// room has filled the disk all the same.
		if err := writeZeros(filler, size); err != nil && !errors.Is(err, syscall.ENOSPC) {
			os.Remove(filler)
			return false, err
		}
		begun()
		d := hold(rng, 2, 8)
		n.logf("disk of %s filled past its reserve (%d MiB) for %.1fs", t.host, size>>20, d.Seconds())
		return true, os.Remove(filler)
	case "flip":
		return n.flip(rng, t.host)
	}
	return false, fmt.Errorf("unknown fault %q", kind)
}

// exists reports whether a process (even a zombie) has pid.
func exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func writeZeros(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for left := size; left > 0; {
		k := min(left, int64(len(zero)))
		if _, err := f.Write(zero[:k]); err != nil {
			f.Close()
			return err
		}
		left -= k
	}
	return f.Close()
}

// flip changes 1-8 bytes of a block file of host that no flip touched on
// any member before, so a good copy always remains.
func (n *nemesis) flip(rng *rand.Rand, host string) (bool, error) {
	var files []string
	filepath.WalkDir(filepath.Join(n.l.chunkDir(host), "blocks"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	for _, p := range files[:min(len(files), 20)] {
		n.mu.Lock()
		seen := n.flips[filepath.Base(p)]
		n.flips[filepath.Base(p)] = true
		n.mu.Unlock()
		if seen {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue // deleted meanwhile
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			f.Close()
			continue
		}
		k := 1 + rng.IntN(8)
		b := make([]byte, 1)
		for range k {
			off := rng.Int64N(fi.Size())
			if _, err := f.ReadAt(b, off); err != nil {
				break
			}
			b[0] ^= byte(1 + rng.IntN(255))
			f.WriteAt(b, off)
		}
		f.Close()
		n.logf("flipped %d bytes of %s on %s", k, filepath.Base(p), host)
		return true, nil
	}
	return false, nil
}

// probe creates and removes a small file until that is acknowledged, and
// returns how long it took.
func probe(ctx context.Context, c *client.Client, p string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var err error
	for i := 0; time.Since(start) < limit && i < 10000; i++ {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = sdkOps{c}.create(octx, p, []byte(p))
		if err == nil || errors.Is(err, wire.ErrExist) {
			err = c.RemovePath(octx, p, false)
		}
		cancel()
		if err == nil {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, err
}

// Chaos runs writers through the SDK and the mount of l while nemeses
// inject faults for cfg.Duration, heals everything, and checks that every
// acknowledged operation is there, nothing is there twice and every
// group's members hold identical inventories. It prints the summary;
// the error says what broke besides lost operations (counted in the
// result).
func Chaos(ctx context.Context, l *Lab, cfg ChaosConfig) (*ChaosResult, error) {
	if cfg.Nemeses <= 0 {
		cfg.Nemeses = 3
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "chaos: seed %d, %s of faults, %d nemeses, %d SDK + %d mount writers\n",
		cfg.Seed, cfg.Duration, cfg.Nemeses, cfg.Writers, cfg.Writers)
	res := &ChaosResult{Faults: map[string]int{}, Recovery: map[string][]time.Duration{},
		ByTarget: map[string][]time.Duration{}, Final: map[string]time.Duration{}}
	ccfg := client.DefaultConfig()
	ccfg.Meta = l.MetaList()
	c, err := client.New(ccfg)
	if err != nil {
		return res, err
	}
	defer c.Close()
	for _, d := range []string{"/probe"} {
		if _, err := c.MkdirAll(ctx, d, 0o755); err != nil {
			return res, err
		}
	}
	led := newLedger()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var dirs []string
	for w := range cfg.Writers {
		for _, kind := range []string{"sdk", "mnt"} {
			dir := fmt.Sprintf("/%s%d", kind, w)
			if _, err := c.MkdirAll(ctx, dir, 0o755); err != nil {
				return res, err
			}
			dirs = append(dirs, dir)
			var ops fsOps = sdkOps{c}
			if kind == "mnt" {
				ops = mountOps{l.Mountpoint()}
			}
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				writer(ctx, ops, dir, seed, led, stop)
			}(cfg.Seed + uint64(len(dirs)))
		}
	}
	nem := &nemesis{l: l, c: c, out: out, busy: map[string]bool{}, res: res, flips: map[string]bool{}}
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	nemErrs := make([]error, cfg.Nemeses)
	var nwg sync.WaitGroup
	for i := range cfg.Nemeses {
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			nemErrs[i] = nem.run(ctx, cfg.Seed+uint64(1000*(i+1)), deadline)
		}()
	}
	nwg.Wait()
	healed := time.Now()
	fmt.Fprintf(out, "chaos: faults over after %.0fs; healing\n", healed.Sub(start).Seconds())
	// Everything is healed: every daemon runs, every link is up.
	for _, h := range l.Hosts() {
		l.SetLink(h.Name, true)
		for _, d := range h.Daemons() {
			if l.Pid(h.Name, d) == 0 {
				l.Restart(h.Name, d)
			} else {
				l.Signal(h.Name, d, syscall.SIGCONT)
			}
		}
	}
	var errs []error
	for _, err := range nemErrs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if d, err := probe(ctx, c, "/probe/final", 3*time.Minute); err != nil {
		errs = append(errs, fmt.Errorf("no write acknowledged within 3m after healing: %w", err))
	} else {
		res.Final["write"] = time.Since(healed)
		_ = d
	}
	// Writers go on for a few seconds on the healed cluster, then stop;
	// an operation still blocked after 3 minutes is a failure.
	time.Sleep(3 * time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		errs = append(errs, errors.New("writers still blocked 3m after the faults ended"))
	}
	res.Acked, res.Failed = led.total(), led.failed

	// Groups converge: identical inventories in each group.
	if d, err := converge(ctx, l, 4*time.Minute); err != nil {
		errs = append(errs, err)
	} else {
		res.Final["groups converged"] = time.Since(healed)
		_ = d
	}
	if err := statusHealthy(ctx, l, 2*time.Minute); err != nil {
		errs = append(errs, err)
	} else {
		res.Final["status healthy"] = time.Since(healed)
	}
	lost, twice, checked, cerrs := check(ctx, c, l, led, dirs, out)
	res.Lost, res.Twice, res.Checked = lost, twice, checked
	errs = append(errs, cerrs...)
	if twice > 0 {
		errs = append(errs, fmt.Errorf("%d effects present that no acknowledged operation left", twice))
	}
	summary(out, res, led)
	return res, errors.Join(errs...)
}

// converge waits until the members of every group list identical block
// inventories.
func converge(ctx context.Context, l *Lab, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	groups := map[int][]string{}
	for _, h := range l.Hosts() {
		if h.Role == "chunk" {
			groups[h.Group] = append(groups[h.Group], h.Addr.String()+":9410")
		}
	}
	var last string
	for time.Since(start) < limit && ctx.Err() == nil {
		ok := true
		for g, members := range groups {
			var want []wire.BlockInfo
			for i, m := range members {
				inv, err := inventory(m)
				if err != nil {
					ok, last = false, fmt.Sprintf("group %d member %s: %v", g, m, err)
					break
				}
				if i == 0 {
					want = inv
				} else if !slices.Equal(inv, want) {
					ok, last = false, fmt.Sprintf("group %d: %s holds %d blocks, %s %d (%s)", g, members[0], len(want), m, len(inv), invDiff(want, inv))
					break
				}
			}
		}
		if ok {
			return time.Since(start), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0, fmt.Errorf("groups not converged after %s: %s", limit, last)
}

// invDiff names up to 5 entries of a that b lacks and of b that a lacks,
// so that a run that does not converge says which blocks differ (the
// lab's block directories are gone once it is down).
func invDiff(a, b []wire.BlockInfo) string {
	only := func(x, y []wire.BlockInfo) []string {
		in := make(map[wire.BlockInfo]bool, len(y))
		for _, e := range y {
			in[e] = true
		}
		var out []string
		for _, e := range x {
			if !in[e] {
				if len(out) == 5 {
					return append(out, "...")
				}
				out = append(out, fmt.Sprintf("%s/%d/%d", wire.BlockName(e.ID), e.Size, e.Mtime))
			}
		}
		return out
	}
	return fmt.Sprintf("only in the first: %v; only in the second: %v", only(a, b), only(b, a))
}

// inventory lists a chunkserver's blocks (id and size).
func inventory(addr string) ([]wire.BlockInfo, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	var all []wire.BlockInfo
	var after uint64
	for range 1000 {
		resp, err := hc.Get(fmt.Sprintf("http://%s%s?after=%d&limit=10000", addr, wire.PathBlocks, after))
		if err != nil {
			return nil, err
		}
		var page wire.BlockList
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, b := range page.Blocks {
			b.Mtime = 0
			all = append(all, b)
			after = b.ID
		}
		if !page.More {
			return all, nil
		}
	}
	return nil, errors.New("inventory longer than 1000 pages")
}

// statusHealthy waits until `reelfs status` exits 0.
func statusHealthy(ctx context.Context, l *Lab, limit time.Duration) error {
	start := time.Now()
	var out []byte
	for time.Since(start) < limit && ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, l.cfg.Bin, "status", "--meta", l.MetaList())
		var err error
		out, err = cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("reelfs status not healthy after %s:\n%s", limit, out)
}

// check reads every file the ledger holds and compares its sha256, makes
// sure every path that must be gone is, and that the writers' directories
// hold nothing else; a sample also over HTTP from the client host.
func check(ctx context.Context, c *client.Client, l *Lab, led *ledger, dirs []string, out io.Writer) (lost, twice, checked int, errs []error) {
	led.mu.Lock()
	defer led.mu.Unlock()
	paths := make([]string, 0, len(led.files))
	for p := range led.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	report := func(format string, args ...any) {
		if lost+twice <= 50 {
			fmt.Fprintf(out, "chaos: "+format+"\n", args...)
		}
	}
	for i, p := range paths {
		want := led.files[p]
		var got string
		var size int64
		var err error
		for try := 0; try < 5; try++ { // a read may fall on a member being repaired
			got, size, err = readSum(ctx, c, p)
			if err == nil && got == want.hex() {
				break
			}
			time.Sleep(time.Second)
		}
		checked++
		switch {
		case err != nil:
			lost++
			report("LOST %s (%s acknowledged at %s): %v", p, want.op, want.at.UTC().Format("15:04:05.000"), err)
		case got != want.hex():
			lost++
			report("LOST %s: sha256 %s size %d, %s acknowledged at %s: %s size %d", p, got, size,
				want.op, want.at.UTC().Format("15:04:05.000"), want.hex(), want.size)
		}
		if i%10 == 0 && i/10 < 20 { // 20 files over HTTP from the client host
			if err := checkHTTP(l.HTTPURL()+strings.TrimPrefix(p, "/"), want.hex()); err != nil {
				lost++
				report("LOST over HTTP %s: %v", p, err)
			}
		}
	}
	for p, g := range led.gone {
		if _, err := c.Resolve(ctx, p); !errors.Is(err, wire.ErrNotFound) {
			twice++
			report("BACK %s: taken away by an %s acknowledged at %s, but resolves (err %v)", p, g.op, g.at.UTC().Format("15:04:05.000"), err)
		}
	}
	for _, d := range dirs {
		attr, err := c.Resolve(ctx, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", d, err))
			continue
		}
		ents, err := c.ReadDirAll(ctx, attr.Ino)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", d, err))
			continue
		}
		for _, e := range ents {
			p := path.Join(d, e.Name)
			_, gone := led.gone[p]
			if _, ok := led.files[p]; !ok && !led.unknown[p] && !gone {
				twice++
				report("EXTRA %s: no operation made it", p)
			}
		}
	}
	return lost, twice, checked, errs
}

func readSum(ctx context.Context, c *client.Client, p string) (string, int64, error) {
	f, err := c.OpenPath(ctx, p, os.O_RDONLY)
	if err != nil {
		return "", 0, err
	}
	defer f.Close(ctx)
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(readerAt{ctx, f}, 0, f.Size()))
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

type readerAt struct {
	ctx context.Context
	f   *client.File
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(r.ctx, p, off) }

func checkHTTP(url, want string) error {
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 %s, want %s", got, want)
	}
	return nil
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// summary prints the table and the one-line verdict.
func summary(out io.Writer, res *ChaosResult, led *ledger) {
	fmt.Fprintf(out, "\n%-6s %6s %s\n", "fault", "count", "first write acked after fault start p50 / p90 / max")
	for _, k := range faultKinds {
		r := res.Recovery[k.name]
		rec := "-"
		if len(r) > 0 {
			rec = fmt.Sprintf("%.2fs / %.2fs / %.2fs", pct(r, 0.5).Seconds(), pct(r, 0.9).Seconds(), pct(r, 1).Seconds())
		}
		fmt.Fprintf(out, "%-6s %6d %s\n", k.name, res.Faults[k.name], rec)
	}
	targets := slices.Sorted(maps.Keys(res.ByTarget))
	fmt.Fprintf(out, "\n%-20s %6s %s\n", "fault on", "count", "first write acked after fault start p50 / p90 / p99 / max")
	for _, k := range targets {
		r := res.ByTarget[k]
		fmt.Fprintf(out, "%-20s %6d %.2fs / %.2fs / %.2fs / %.2fs\n", k, len(r),
			pct(r, 0.5).Seconds(), pct(r, 0.9).Seconds(), pct(r, 0.99).Seconds(), pct(r, 1).Seconds())
	}
	led.mu.Lock()
	var kinds []string
	for k, v := range led.acked {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	var errKinds []string
	for k, v := range led.errs {
		errKinds = append(errKinds, fmt.Sprintf("%dx %q", v, k))
	}
	led.mu.Unlock()
	sort.Strings(kinds)
	sort.Strings(errKinds)
	fmt.Fprintf(out, "operations acknowledged %d (%s); not acknowledged %d\n", res.Acked, strings.Join(kinds, ", "), res.Failed)
	if len(errKinds) > 0 {
		fmt.Fprintf(out, "errors of unacknowledged operations: %s\n", strings.Join(errKinds[:min(len(errKinds), 8)], ", "))
	}
	fmt.Fprintf(out, "checked %d files; lost %d; present twice or resurrected %d\n", res.Checked, res.Lost, res.Twice)
	for _, k := range []string{"write", "groups converged", "status healthy"} {
		if d, ok := res.Final[k]; ok {
			fmt.Fprintf(out, "after the last fault: %s in %.1fs\n", k, d.Seconds())
		} else {
			fmt.Fprintf(out, "after the last fault: %s NEVER\n", k)
		}
	}
	fmt.Fprintf(out, "chaos: %d faults, %d operations acknowledged, %d lost\n", res.TotalFaults(), res.Acked, res.Lost)
}
