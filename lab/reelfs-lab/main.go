// Command reelfs-lab runs the lab of vagrant/ as network namespaces on this
// machine (as root): `up` builds it and leaves it running, `down` removes
// it, `chaos` builds one, runs the fault-injection suite on it and removes
// it (keeping the logs of a failing run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/reelfs/reelfs/lab"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: reelfs-lab up|down|chaos [flags]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("reelfs-lab "+cmd, flag.ExitOnError)
	dir := fs.String("dir", "data/lab", "state, data and logs of the lab")
	prefix := fs.String("prefix", "rlab-", "prefix of the namespaces, links and bridge (at most 5 characters)")
	hostsFile := fs.String("hosts", "vagrant/hosts", "the lab's hosts file")
	bin := fs.String("bin", "bin/reelfs", "reelfs binary")
	consulBin := fs.String("consul", "bin/consul", "consul binary (make consul)")
	provision := fs.String("provision", "vagrant/provision.sh", "provisioning script")
	duration := fs.Duration("duration", 90*time.Second, "chaos: how long faults are injected ($CHAOS_DURATION)")
	seed := fs.Uint64("seed", 0, "chaos: seed of the nemesis and workload (0: from the clock)")
	fs.Parse(os.Args[2:])
	if d := os.Getenv("CHAOS_DURATION"); d != "" && cmd == "chaos" {
		v, err := time.ParseDuration(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "reelfs-lab: CHAOS_DURATION=%s: %v\n", d, err)
			os.Exit(2)
		}
		*duration = v
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
			os.Exit(2)
		}
		if q, err := filepath.EvalSymlinks(a); err == nil {
			return q
		}
		return a
	}
	*dir = abs(*dir)

	if cmd == "down" {
		if err := lab.Down(*dir, *prefix, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
			os.Exit(1)
		}
		return
	}
	if cmd != "up" && cmd != "chaos" {
		fmt.Fprintf(os.Stderr, "reelfs-lab: unknown command %q (up, down, chaos)\n", cmd)
		os.Exit(2)
	}
	f, err := os.Open(*hostsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
		os.Exit(2)
	}
	hosts, err := lab.ParseHosts(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
		os.Exit(2)
	}
	cfg := lab.Config{Dir: *dir, Prefix: *prefix, Hosts: hosts, Bin: abs(*bin), ConsulBin: abs(*consulBin),
		Provision: abs(*provision), Out: os.Stdout}
	if cmd == "chaos" {
		cfg.Env, cfg.ChunkDisk = lab.ChaosEnv(), lab.ChaosDisk
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
		if err := lab.Down(*dir, *prefix, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
		}
		os.Exit(1)
	}
	if cmd == "up" {
		fmt.Printf(`
reelfs lab is up (%d hosts, state and logs in %s)
  mount   %s   (on host client; try: cp movie.mp4 %s/clip.mp4)
  http    %s   (try: curl %sclip.mp4, or open %splayer/clip.mp4)
  meta    %s   (reelfs status --meta %s)
  consul  http://%s/ui/
  a host  ip netns exec %sHOST ...   (hosts: vagrant/hosts); cut one off: ip link set %sHOST down
  stop    make lab-down
`, len(hosts), *dir, l.Mountpoint(), l.Mountpoint(), l.HTTPURL(), l.HTTPURL(), l.HTTPURL(),
			l.MetaList(), l.MetaList(), l.ConsulAddr(), *prefix, *prefix)
		return
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	res, err := lab.Chaos(ctx, l, lab.ChaosConfig{Duration: *duration, Seed: *seed, Out: os.Stdout})
	failed := err != nil || res.Lost > 0
	if err != nil {
		fmt.Fprintln(os.Stderr, "reelfs-lab: chaos:", err)
	}
	if err := lab.Down(*dir, *prefix, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reelfs-lab:", err)
		failed = true
	}
	if failed {
		fmt.Fprintf(os.Stderr, "reelfs-lab: chaos FAILED (seed %d); logs kept in %s\n", *seed, *dir)
		os.Exit(1)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		os.Exit(1)
	}
	os.RemoveAll(*dir)
}
