package fusefs

import (
	"context"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
)

var (
	_ fs.NodeGetxattrer    = (*node)(nil)
	_ fs.NodeSetxattrer    = (*node)(nil)
	_ fs.NodeListxattrer   = (*node)(nil)
	_ fs.NodeRemovexattrer = (*node)(nil)
)

// unservedXattr reports whether go-fuse answers GETXATTR of name itself
// (MountOptions.IgnoreSecurityLabels: ENODATA for file capabilities and
// POSIX ACLs, which saves the metaserver a lookup on every write(2)). Such
// an attribute must not be settable either, or a value could be stored
// that reads back as absent.
func unservedXattr(name string) bool {
	return name == "security.capability" || strings.HasPrefix(name, "system.posix_acl_")
}

// Getxattr copies the value into dest. An empty dest asks for the size;
// a dest that is too small gets ERANGE and the size.
func (n *node) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if n.noXattrs() {
		return 0, n.fsys.result("getxattr", n.ino(), syscall.ENODATA)
	}
	v, err := n.fsys.c.GetXattr(ctx, n.ino(), name)
	if err != nil {
		return 0, n.fsys.result("getxattr", n.ino(), err)
	}
	if len(dest) < len(v) {
		if len(dest) == 0 {
			return uint32(len(v)), n.fsys.result("getxattr", n.ino(), nil)
		}
		return uint32(len(v)), n.fsys.result("getxattr", n.ino(), syscall.ERANGE)
	}
	return uint32(copy(dest, v)), n.fsys.result("getxattr", n.ino(), nil)
}

func (n *node) Setxattr(ctx context.Context, name string, value []byte, flags uint32) syscall.Errno {
	if unservedXattr(name) {
		return n.fsys.result("setxattr", n.ino(), syscall.ENOTSUP)
	}
	err := n.fsys.c.SetXattr(ctx, n.ino(), name, value, flags)
	if err == nil {
		n.markXattrs()
	}
	return n.fsys.result("setxattr", n.ino(), err)
}

// Listxattr writes the names, each ending in NUL, into dest, with the same
// size protocol as Getxattr.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if n.noXattrs() {
		return 0, n.fsys.result("listxattr", n.ino(), nil)
	}
	names, err := n.fsys.c.ListXattr(ctx, n.ino())
	if err != nil {
		return 0, n.fsys.result("listxattr", n.ino(), err)
	}
	size := 0
	for _, name := range names {
		size += len(name) + 1
	}
	if len(dest) < size {
		if len(dest) == 0 {
			return uint32(size), n.fsys.result("listxattr", n.ino(), nil)
		}
		return uint32(size), n.fsys.result("listxattr", n.ino(), syscall.ERANGE)
	}
	off := 0
	for _, name := range names {
		off += copy(dest[off:], name)
		dest[off] = 0
		off++
	}
	return uint32(size), n.fsys.result("listxattr", n.ino(), nil)
}

func (n *node) Removexattr(ctx context.Context, name string) syscall.Errno {
	return n.fsys.result("removexattr", n.ino(), n.fsys.c.RemoveXattr(ctx, n.ino(), name))
}
