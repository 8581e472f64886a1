package fusefs

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// closeTimeout bounds the flushes and closes of Unmount and Wait, which
// run when nobody waits for a particular file any more.
const closeTimeout = 2 * time.Minute

// FS is a mounted reelfs filesystem, as Mount returns it. (A type named
// Mount cannot live beside the func Mount in one package.)
type FS struct {
	mountpoint string
	server     *fuse.Server
	fsys       *filesystem
	log        *slog.Logger
	served     chan struct{} // closed when the serve loop has returned
	leftovers  sync.Once
}

// Mount mounts the cluster that c talks to at mountpoint and serves it
// until the filesystem is unmounted (Unmount, `reelfs umount`, or
// `fusermount3 -u`). ctx bounds the setup only; the caller owns c and
// closes it after Wait returns.
func Mount(ctx context.Context, c *client.Client, mountpoint string, opt Options) (*FS, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkMountpoint(mountpoint); err != nil {
		return nil, err
	}
	root, err := c.GetAttr(ctx, wire.RootIno)
	if err != nil {
		return nil, fmt.Errorf("fusefs: root of the cluster: %w", err)
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("%w: the cluster's root (mode %o)", ErrNotDir, root.Mode)
	}
	fsys, err := newFilesystem(c, opt, log)
	if err != nil {
		return nil, fmt.Errorf("fusefs: metrics: %w", err)
	}
	rootNode := &node{fsys: fsys}
	rootNode.remember(root)

	entry, attr, negative := opt.EntryTimeout, opt.AttrTimeout, opt.NegativeTimeout
	fopt := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: opt.AllowOther,
			// The kernel checks permissions against the attributes we
			// return, as a local filesystem would.
			Options:      []string{"default_permissions"},
			FsName:       opt.FsName,
			Name:         "reelfs",
			MaxWrite:     opt.MaxWrite,
			MaxReadAhead: opt.MaxWrite,
			// Splicing moves a read from a file descriptor to /dev/fuse
			// through a pipe; our reads answer with bytes in memory, which
			// go-fuse can only writev. With splice on, every read first
			// took a pipe, resized it to the reply plus a page (failing,
			// with a log line, for 1 MiB reads: 1 MiB is the pipe's
			// limit) and wrote the header into it, then fell back to
			// writev anyway.
			DisableSplice: true,
			// More concurrent background requests (read-ahead) than the
			// kernel's default of 12 keep the client's prefetch busy.
			MaxBackground: 64,
			// fcntl and flock locks go to the metaserver; see lock.go.
			EnableLocks:          true,
			IgnoreSecurityLabels: true,
			DisableXAttrs:        opt.NoXattrs,
			Debug:                opt.Debug,
			Logger:               slog.NewLogLogger(log.Handler(), slog.LevelInfo),
		},
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &negative,
		// Modes are exact: a 000 file stays 000 for default_permissions.
		NullPermissions: true,
		RootStableAttr:  &fs.StableAttr{Ino: wire.RootIno},
		// Node ids are reelfs inode numbers (never reused), so lockFS can
		// tell which inode a FLUSH is for.
		ExternalNodeID: true,
		Logger:         slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	raw := &lockFS{RawFileSystem: fs.NewNodeFS(rootNode, fopt), fsys: fsys}
	server, err := fuse.NewServer(raw, mountpoint, &fopt.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("fusefs: mount %s: %w", mountpoint, err)
	}
	m := &FS{
		mountpoint: mountpoint,
		server:     server,
		fsys:       fsys,
		log:        log,
		served:     make(chan struct{}),
	}
	go func() {
		defer close(m.served)
		server.Serve()
	}()
	if err := server.WaitMount(); err != nil {
		if uerr := server.Unmount(); uerr != nil {
			err = errors.Join(err, uerr, LazyUnmount(mountpoint))
		}
		<-m.served
		return nil, fmt.Errorf("fusefs: mount %s: %w", mountpoint, err)
	}
	if opt.ReadAheadKB > 0 {
		if err := setReadAhead(mountpoint, opt.ReadAheadKB); err != nil {
			log.Warn("read-ahead window left at the kernel default", "err", err)
		}
	}
	log.Info("mounted", "mountpoint", mountpoint, "allow_other", opt.AllowOther,
		"entry_timeout", opt.EntryTimeout, "attr_timeout", opt.AttrTimeout, "read_ahead_kb", opt.ReadAheadKB)
	return m, nil
}

// fuseSuperMagic is f_type of a FUSE filesystem in statfs(2).
const fuseSuperMagic = 0x65735546

// setReadAhead sets the read-ahead window of the mounted filesystem's
// backing device info, /sys/class/bdi/MAJOR:MINOR/read_ahead_kb. It
// refuses unless the path is a FUSE filesystem on an anonymous device:
// if the mount were not (or no longer) over the path, the device would be
// the disk under it, whose setting is not ours to change.
func setReadAhead(mountpoint string, kb int) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(mountpoint, &sfs); err != nil {
		return fmt.Errorf("fusefs: read-ahead: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return fmt.Errorf("fusefs: read-ahead: %w", err)
	}
	if sfs.Type != fuseSuperMagic || unix.Major(st.Dev) != 0 {
		return fmt.Errorf("fusefs: read-ahead: %s is not a FUSE mount (fs type %#x, device %d:%d)",
			mountpoint, sfs.Type, unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(strconv.Itoa(kb)), 0); err != nil {
		return fmt.Errorf("fusefs: read-ahead: %w", err)
	}
	return nil
}

// checkMountpoint refuses a mount point that is not a directory, and
// names a stale FUSE mount (its server was killed) for what it is.
func checkMountpoint(mountpoint string) error {
	st, err := os.Stat(mountpoint)
	if errors.Is(err, syscall.ENOTCONN) {
		return fmt.Errorf("%w: %s: run `reelfs umount %s` first", ErrStaleMount, mountpoint, mountpoint)
	}
	if err != nil {
		return fmt.Errorf("fusefs: mount point: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: mount point %s", ErrNotDir, mountpoint)
	}
	return nil
}

// Mountpoint is where the filesystem is mounted.
func (m *FS) Mountpoint() string { return m.mountpoint }

// Wait blocks until the filesystem is unmounted and the kernel connection
// is gone, then closes any file the kernel never released.
func (m *FS) Wait() {
	<-m.served
	m.closeLeftovers()
}

// Unmount flushes the files open in the mount (best effort: the data of
// a file still being written may change afterwards) and unmounts. When
// the mount is busy it is detached lazily instead: it disappears from the
// namespace at once, processes using it keep working, and the kernel
// ends the connection (and Wait returns) when the last of them lets go.
func (m *FS) Unmount() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	m.fsys.locks.close() // lock waiters give up, so the kernel can let go
	for _, h := range m.fsys.handles() {
		if !h.writable {
			continue
		}
		if err := h.f.Flush(ctx); err != nil {
			m.log.Warn("unmount: flush failed", "ino", h.f.Ino(), "err", err)
		}
	}
	err := m.server.Unmount()
	if err == nil {
		m.closeLeftovers()
		m.log.Info("unmounted", "mountpoint", m.mountpoint)
		return nil
	}
	m.log.Warn("unmount failed, detaching lazily", "mountpoint", m.mountpoint, "err", err)
	if lerr := LazyUnmount(m.mountpoint); lerr != nil {
		return fmt.Errorf("fusefs: unmount %s: %w", m.mountpoint, errors.Join(err, lerr))
	}
	return nil
}

// closeLeftovers closes, once, the files the kernel never released: after
// the connection is gone no RELEASE can come for them, and closing drops
// their opens in the metaserver (orphans get reclaimed).
func (m *FS) closeLeftovers() {
	m.leftovers.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		for _, h := range m.fsys.handles() {
			if err := h.f.Close(ctx); err != nil {
				m.log.Warn("close of a file left open at unmount failed", "ino", h.f.Ino(), "err", err)
			}
			m.fsys.unregister(h)
		}
	})
}

// LazyUnmount detaches the FUSE mount at mountpoint even when it is busy
// or its server is dead (ENOTCONN, "transport endpoint is not connected",
// after a client was killed): `fusermount3 -u -z`, or umount2 with
// MNT_DETACH when running as root.
func LazyUnmount(mountpoint string) error {
	var errs []error
	if os.Geteuid() == 0 {
		err := syscall.Unmount(mountpoint, syscall.MNT_DETACH)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("umount2(MNT_DETACH): %w", err))
	}
	for _, bin := range []string{"fusermount3", "fusermount"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-u", "-z", mountpoint).CombinedOutput()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s -u -z: %w: %s", bin, err, strings.TrimSpace(string(out))))
		break
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no fusermount3 or fusermount in PATH and not root"))
	}
	return fmt.Errorf("fusefs: lazy unmount %s: %w", mountpoint, errors.Join(errs...))
}
