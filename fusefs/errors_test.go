package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestToErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{wire.ErrNotFound, syscall.ENOENT},
		{wire.Errorf(wire.ErrNotFound, "%q in directory 1", "x"), syscall.ENOENT},
		{fmt.Errorf("client: lookup: %w", wire.Errorf(wire.ErrExist, "x")), syscall.EEXIST},
		{wire.ErrNotDir, syscall.ENOTDIR},
		{wire.ErrIsDir, syscall.EISDIR},
		{wire.ErrNotEmpty, syscall.ENOTEMPTY},
		{wire.ErrInvalid, syscall.EINVAL},
		{wire.ErrNameTooLong, syscall.ENAMETOOLONG},
		{wire.ErrPerm, syscall.EPERM},
		{wire.ErrAccess, syscall.EACCES},
		{wire.ErrNoAttr, syscall.ENODATA},
		{wire.ErrRange, syscall.ERANGE},
		{fmt.Errorf("upload: %w", wire.ErrNoSpace), syscall.ENOSPC},
		{wire.ErrNotSupported, syscall.ENOTSUP},
		{context.Canceled, syscall.EINTR},
		{fmt.Errorf("read block 00000000000000a1 from 127.0.0.1:1: %w", wire.ErrChecksum), syscall.EIO},
		{wire.Errorf(wire.ErrIO, "block 1 on 127.0.0.1:2"), syscall.EIO},
		{wire.ErrUnavailable, syscall.EIO},
		{wire.ErrNotLeader, syscall.EIO},
		{wire.ErrStaleEpoch, syscall.EIO},
		{wire.ErrUnauthorized, syscall.EIO},
		{context.DeadlineExceeded, syscall.EIO},
		{io.ErrUnexpectedEOF, syscall.EIO},
		{errors.New("something else"), syscall.EIO},
		{syscall.EAGAIN, syscall.EAGAIN},
		{fmt.Errorf("lock: %w", syscall.EINTR), syscall.EINTR},
		{syscall.EXDEV, syscall.EXDEV},
	} {
		if got := toErrno(tc.err); got != tc.want {
			t.Errorf("toErrno(%v) = %v (%d), want %v (%d)", tc.err, got, int(got), tc.want, int(tc.want))
		}
	}
}

func TestSplitJoinTime(t *testing.T) {
	for _, ns := range []int64{0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, -1, -1_500_000_000} {
		sec, nsec := splitTime(ns)
		if nsec >= 1e9 {
			t.Errorf("splitTime(%d): nsec %d out of range", ns, nsec)
		}
		if got := joinTime(sec, nsec); got != ns {
			t.Errorf("joinTime(splitTime(%d)) = %d", ns, got)
		}
	}
	if sec, nsec := splitTime(-1); int64(sec) != -1 || nsec != 999_999_999 {
		t.Errorf("splitTime(-1) = %d, %d; want -1 s + 999999999 ns", int64(sec), nsec)
	}
}

func TestOpenFlags(t *testing.T) {
	in := uint32(syscall.O_RDWR | syscall.O_APPEND | syscall.O_TRUNC | syscall.O_LARGEFILE | syscall.O_NOFOLLOW)
	if got, want := openFlags(in), syscall.O_RDWR|syscall.O_APPEND|syscall.O_TRUNC; got != want {
		t.Errorf("openFlags(%#x) = %#x, want %#x", in, got, want)
	}
	for flags, want := range map[uint32]bool{
		syscall.O_RDONLY: false, syscall.O_WRONLY: true, syscall.O_RDWR: true,
		syscall.O_RDONLY | syscall.O_APPEND: false,
	} {
		if got := writable(flags); got != want {
			t.Errorf("writable(%#x) = %v, want %v", flags, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("DefaultOptions().Validate() = %v", err)
	}
	for name, mutate := range map[string]func(*Options){
		"negative entry timeout": func(o *Options) { o.EntryTimeout = -1 },
		"negative attr timeout":  func(o *Options) { o.AttrTimeout = -1 },
		"negative neg timeout":   func(o *Options) { o.NegativeTimeout = -1 },
		"tiny max write":         func(o *Options) { o.MaxWrite = 512 },
		"huge max write":         func(o *Options) { o.MaxWrite = 2 << 20 },
		"odd max write":          func(o *Options) { o.MaxWrite = 65536 + 1 },
		"empty fsname":           func(o *Options) { o.FsName = "" },
		"fsname with space":      func(o *Options) { o.FsName = "reel fs" },
	} {
		o := DefaultOptions()
		mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%s: Validate() = %v, want ErrBadOptions", name, err)
		}
	}
}

func TestUnservedXattr(t *testing.T) {
	for name, want := range map[string]bool{
		"security.capability":       true,
		"system.posix_acl_access":   true,
		"system.posix_acl_default":  true,
		"user.mime_type":            false,
		"security.selinux":          false,
		"trusted.reelfs.something":  false,
		"security.capability.extra": false,
	} {
		if got := unservedXattr(name); got != want {
			t.Errorf("unservedXattr(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestBlocks(t *testing.T) {
	reg := uint32(wire.ModeRegular | 0o644)
	for _, tc := range []struct {
		name string
		a    wire.Attr
		want uint64
	}{
		{"sparse file", wire.Attr{Mode: reg, Size: 1 << 30, Stored: 1 << 20, Flags: wire.AttrStored}, 2048},
		{"empty sparse file", wire.Attr{Mode: reg, Size: 1 << 30, Flags: wire.AttrStored}, 0},
		{"partial sector rounds up", wire.Attr{Mode: reg, Size: 1000, Stored: 513, Flags: wire.AttrStored}, 2},
		{"file from before the count", wire.Attr{Mode: reg, Size: 1000}, 2},
		{"directory", wire.Attr{Mode: wire.ModeDir | 0o755, Size: 4096, Stored: 0, Flags: wire.AttrStored}, 8},
	} {
		if got := blocks(tc.a); got != tc.want {
			t.Errorf("%s: blocks = %d, want %d", tc.name, got, tc.want)
		}
	}
}
