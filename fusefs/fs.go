package fusefs

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// statfsBlock is the unit of the block counts statfs reports.
const statfsBlock = 4096

// statfsFreeInodes is the number of free inodes statfs reports: reelfs
// allocates inodes without a fixed table, so only "plenty" is true.
const statfsFreeInodes = 1 << 40

// filesystem is the state one mount shares between its nodes.
type filesystem struct {
	c     *client.Client
	log   *slog.Logger
	locks *lockTable
	ops   *prometheus.CounterVec // nil without Options.Metrics
	// blksize is the st_blksize reported for every inode: the request
	// size, so cp and friends use buffers that fill one request.
	blksize uint32
	// attrTimeout is how long attributes this mount saw may answer for
	// the inode; the kernel caches them as long.
	attrTimeout time.Duration

	mu sync.Mutex // guards open
	// open holds the handles this mount has open, by inode: for Getattr
	// of files written here, for Unmount's flush, and for closing what
	// the kernel never released when the connection ends.
	open map[uint64][]*handle
}

func newFilesystem(c *client.Client, opt Options, log *slog.Logger) (*filesystem, error) {
	f := &filesystem{
		c:           c,
		log:         log,
		locks:       newLockTable(c, log),
		blksize:     uint32(opt.MaxWrite),
		attrTimeout: opt.AttrTimeout,
		open:        make(map[uint64][]*handle),
	}
	if opt.Metrics != nil {
		f.ops = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reelfs_fuse_ops_total",
			Help: "FUSE operations served, by operation and result (OK or the errno name).",
		}, []string{"op", "result"})
		if err := opt.Metrics.Register(f.ops); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// result is the last step of every operation: it turns err into the errno
// the kernel gets, counts the operation and logs errors that the caller
// can only see as EIO (with the op, the inode and the error, which names
// the block and servers involved). It logs each such failure once, here,
// and nowhere else.
func (f *filesystem) result(op string, ino uint64, err error) syscall.Errno {
	errno := toErrno(err)
	if errno == syscall.EIO {
		f.log.Warn("fuse: operation failed", "op", op, "ino", ino, "err", err)
	}
	if f.ops != nil {
		res := "OK"
		if errno != 0 {
			res = unix.ErrnoName(errno)
			if res == "" {
				res = errno.Error()
			}
		}
		f.ops.WithLabelValues(op, res).Inc()
	}
	return errno
}

// register and unregister keep the open-handle table.
func (f *filesystem) register(h *handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := h.f.Ino()
	f.open[ino] = append(f.open[ino], h)
}

func (f *filesystem) unregister(h *handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := h.f.Ino()
	list := f.open[ino]
	for i, x := range list {
		if x == h {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(f.open, ino)
	} else {
		f.open[ino] = list
	}
}

// handles is a snapshot of every open handle.
func (f *filesystem) handles() []*handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*handle
	for _, list := range f.open {
		all = append(all, list...)
	}
	return all
}

// writer returns a handle of ino open for writing in this mount, or nil.
func (f *filesystem) writer(ino uint64) *handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.open[ino] {
		if h.writable {
			return h
		}
	}
	return nil
}

// followed reports whether ino is open in this mount, and only for
// reading.
func (f *filesystem) followed(ino uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.open[ino]
	for _, h := range hs {
		if h.writable {
			return false
		}
	}
	return len(hs) > 0
}

// overlay replaces the size and mtime of a with those of this mount's
// unflushed writes when the inode is open for writing here. Every handle
// of an inode shares one state in the client, so any writer will do.
func (f *filesystem) overlay(a *wire.Attr) {
	if !a.IsRegular() {
		return
	}
	h := f.writer(a.Ino)
	if h == nil {
		return
	}
	a.Size = uint64(h.f.Size())
	if m := h.f.Attr().Mtime; m > a.Mtime {
		a.Mtime = m
	}
}

// fillAttr converts attributes for the kernel.
func (f *filesystem) fillAttr(out *fuse.Attr, a wire.Attr) {
	f.overlay(&a)
	out.Ino = a.Ino
	out.Size = a.Size
	out.Blocks = blocks(a)
	out.Atime, out.Atimensec = splitTime(a.Atime)
	out.Mtime, out.Mtimensec = splitTime(a.Mtime)
	out.Ctime, out.Ctimensec = splitTime(a.Ctime)
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.Uid
	out.Gid = a.Gid
	out.Rdev = a.Rdev
	out.Blksize = f.blksize
}

// blocks is st_blocks, in 512-byte units: for a regular file the bytes
// its blocks store (holes of a sparse file take none), as of its last
// commit; unflushed writes of this mount count once committed, at the
// latest after --commit-every. Files written before the metaserver kept
// the count (no wire.AttrStored), and other inodes, count their size.
func blocks(a wire.Attr) uint64 {
	if a.IsRegular() && a.Flags&wire.AttrStored != 0 {
		return (a.Stored + 511) / 512
	}
	return (a.Size + 511) / 512
}

func (f *filesystem) fillEntry(out *fuse.EntryOut, a wire.Attr) {
	f.fillAttr(&out.Attr, a)
}

// splitTime turns Unix nanoseconds into the seconds and nanoseconds of a
// FUSE attribute (seconds are a signed value in an unsigned field).
func splitTime(ns int64) (uint64, uint32) {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	return uint64(sec), uint32(nsec)
}

// joinTime is the inverse of splitTime.
func joinTime(sec uint64, nsec uint32) int64 {
	return int64(sec)*1e9 + int64(nsec)
}

// caller is the effective uid and gid of the process making the request.
func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return uint32(os.Geteuid()), uint32(os.Getegid())
}

// openFlags keeps the open(2) flags the client understands.
func openFlags(flags uint32) int {
	return int(flags) & (syscall.O_ACCMODE | syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC | syscall.O_APPEND)
}

// writable reports whether open flags allow writing.
func writable(flags uint32) bool {
	acc := flags & syscall.O_ACCMODE
	return acc == syscall.O_WRONLY || acc == syscall.O_RDWR
}
