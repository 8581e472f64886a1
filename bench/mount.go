package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mountedIn reports whether mnt is a mount point in mountinfo (the text
// of /proc/self/mountinfo), and its filesystem type. Field 5 is the mount
// point with spaces and other specials octal-escaped; the type follows the
// " - " separator.
func mountedIn(mountinfo, mnt string) (bool, string) {
	mnt = filepath.Clean(mnt)
	found, fstype := false, ""
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMount(f[4]) != mnt {
			continue
		}
		found, fstype = true, ""
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1]
				break
			}
		}
		// Keep scanning: a later line stacked on the same point wins.
	}
	return found, fstype
}

// unescapeMount undoes the \ooo escapes of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isFuseMounted reports whether a FUSE filesystem is mounted at mnt.
func isFuseMounted(mnt string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	ok, fstype := mountedIn(string(b), mnt)
	return ok && strings.HasPrefix(fstype, "fuse"), nil
}

// waitMount waits until mnt is (want) or is not (!want) a FUSE mount. A
// dead owner process ends the wait early.
func waitMount(ctx context.Context, mnt string, want bool, limit time.Duration, owner *child) error {
	deadline := time.Now().Add(limit)
	for {
		m, err := isFuseMounted(mnt)
		if err != nil {
			return err
		}
		if m == want {
			return nil
		}
		if want && owner != nil && owner.exited() {
			return fmt.Errorf("%s exited before %s was mounted (%v): %s", owner.name, mnt, owner.err, owner.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: mounted=%v after %s, want %v", mnt, m, limit, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forceUnmount leaves mnt unmounted: fusermount3 -u, then the lazy -u -z
// when the first one fails (a busy or dead mount). It returns an error
// only when mnt is still mounted afterwards.
func forceUnmount(mnt string) error {
	if m, err := isFuseMounted(mnt); err != nil || !m {
		return err
	}
	out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput()
	if err == nil {
		return nil
	}
	out2, err2 := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput()
	if err2 != nil {
		return fmt.Errorf("unmount %s: %s; lazy: %s", mnt, strings.TrimSpace(string(out)), strings.TrimSpace(string(out2)))
	}
	return nil
}

// sepMount is `reelfs mount` as a process of its own against a cluster
// started without --mount: the way a client machine mounts a cluster,
// where every metadata call and block crosses the network.
type sepMount struct {
	c       *cluster
	mnt     string
	proc    *child
	started int
	args    []string // extra flags of `reelfs mount`
}

// startSeparate starts a cluster named name without a mount and a
// separate `reelfs mount` of it at mnt; r.cleanup stops both.
func (r *runner) startSeparate(ctx context.Context, name, mnt string) (*sepMount, error) {
	c, err := r.startCluster(ctx, name, false, "")
	if err != nil {
		return nil, fmt.Errorf("reelfs server: %w", err)
	}
	m := &sepMount{c: c, mnt: mnt}
	// Registered after the cluster's: cleanups run newest first, so the
	// mount goes before its server.
	r.atCleanup(func() {
		if err := m.stop(); err != nil {
			r.log.Warn("unmount", "mnt", mnt, "err", err)
		}
	})
	if err := m.start(ctx); err != nil {
		return nil, fmt.Errorf("reelfs mount: %w", err)
	}
	return m, nil
}

func (m *sepMount) start(ctx context.Context) error {
	if err := forceUnmount(m.mnt); err != nil {
		return err
	}
	if err := os.MkdirAll(m.mnt, 0o755); err != nil {
		return err
	}
	m.started++
	logPath := filepath.Join(m.c.r.dir, fmt.Sprintf("%s-mount-%d.log", m.c.name, m.started))
	argv := append([]string{m.c.r.bin, "mount", "--log-level", "warn"}, m.args...)
	p, err := startChild("reelfs mount", logPath, "", m.c.env(), append(argv, m.mnt)...)
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

// stop ends the mount (SIGTERM: it flushes and unmounts) and lazily
// unmounts whatever it left behind.
func (m *sepMount) stop() error {
	var err error
	if m.proc != nil {
		err = m.proc.stop(60 * time.Second)
		m.proc = nil
	}
	if uerr := forceUnmount(m.mnt); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// restartCold stops the mount and the server, drops the page cache and
// starts both again.
func (m *sepMount) restartCold(ctx context.Context) error {
	if err := m.stop(); err != nil {
		return err
	}
	if err := m.c.restartCold(ctx); err != nil {
		return err
	}
	return m.start(ctx)
}
