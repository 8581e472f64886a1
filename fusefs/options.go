package fusefs

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure one mount.
type Options struct {
	// EntryTimeout is how long the kernel may trust a name -> inode
	// answer, AttrTimeout how long it may trust attributes, and
	// NegativeTimeout how long it may remember that a name does not
	// exist. Changes made through another mount (or the HTTP server)
	// become visible after these times; changes made through this mount
	// are visible at once.
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration
	// MaxWrite is the largest READ/WRITE request the kernel sends, in
	// bytes: a multiple of 4096 up to 1 MiB (the kernel's limit of 256
	// pages). The kernel's read-ahead window is set to the same size.
	MaxWrite int
	// ReadAheadKB is the kernel's read-ahead window for the mount, set
	// through /sys/class/bdi after mounting (FUSE itself caps it at the
	// kernel default of 128 KiB, whatever the daemon asks for). A larger
	// window lets a streaming read arrive as MaxWrite-sized requests
	// instead of 128 KiB ones. 0 leaves the kernel's default; setting it
	// needs root, and failing to is only logged.
	ReadAheadKB int
	// AllowOther lets users other than the one who mounted access the
	// filesystem (mount option allow_other). The kernel still checks
	// permissions against the attributes (default_permissions is always
	// on), so this is safe; it needs user_allow_other in
	// /etc/fuse.conf unless the mounting user is root.
	AllowOther bool
	// NoXattrs turns extended attributes off for this mount: every
	// xattr request is answered ENOSYS, after which the kernel sends no
	// more of them and answers EOPNOTSUPP itself. `ls -l` then costs no
	// kernel-to-mount round trip for the two attributes it asks each
	// file for (security.selinux, system.posix_acl_access), which is
	// most of its time in a large directory. Attributes stay readable
	// and settable through the SDK and the CLI; programs that need them
	// through the mount (rsync -X, cp --preserve=xattr) fail with
	// EOPNOTSUPP. JuiceFS mounts this way by default.
	NoXattrs bool
	// Debug logs every FUSE request and reply at Info level.
	Debug bool
	// FsName is the source shown by mount(8) and df(1).
	FsName string
	// Logger receives the mount's logs; nil discards them.
	Logger *slog.Logger
	// Metrics, when not nil, receives a counter of FUSE operations by
	// name and errno (reelfs_fuse_ops_total).
	Metrics prometheus.Registerer
}

// DefaultOptions are the options of `reelfs mount`: one second of entry
// and attribute caching (the libfuse default), no negative caching, 1 MiB
// requests, and allow_other when running as root.
func DefaultOptions() Options {
	return Options{
		EntryTimeout:    time.Second,
		AttrTimeout:     time.Second,
		NegativeTimeout: 0,
		MaxWrite:        fuse.MAX_KERNEL_WRITE,
		ReadAheadKB:     8 << 10,
		AllowOther:      os.Geteuid() == 0,
		FsName:          "reelfs",
	}
}

// Validate checks every field.
func (o Options) Validate() error {
	switch {
	case o.EntryTimeout < 0:
		return fmt.Errorf("%w: negative EntryTimeout %v", ErrBadOptions, o.EntryTimeout)
	case o.AttrTimeout < 0:
		return fmt.Errorf("%w: negative AttrTimeout %v", ErrBadOptions, o.AttrTimeout)
	case o.NegativeTimeout < 0:
		return fmt.Errorf("%w: negative NegativeTimeout %v", ErrBadOptions, o.NegativeTimeout)
	case o.MaxWrite < 4096 || o.MaxWrite > fuse.MAX_KERNEL_WRITE || o.MaxWrite%4096 != 0:
		return fmt.Errorf("%w: MaxWrite %d is not a multiple of 4096 in [4096, %d]",
			ErrBadOptions, o.MaxWrite, fuse.MAX_KERNEL_WRITE)
	case o.ReadAheadKB < 0 || o.ReadAheadKB > 1<<20:
		return fmt.Errorf("%w: ReadAheadKB %d outside [0, %d]", ErrBadOptions, o.ReadAheadKB, 1<<20)
	case o.FsName == "":
		return fmt.Errorf("%w: empty FsName", ErrBadOptions)
	case strings.ContainsAny(o.FsName, " \t\n\x00"):
		return fmt.Errorf("%w: FsName %q contains white space or NUL", ErrBadOptions, o.FsName)
	}
	return nil
}
