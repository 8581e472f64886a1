package client

import (
	"context"
	"errors"
	"os"
	"path"
	"strings"

	"github.com/reelfs/reelfs/internal/wire"
)

// defaultFileMode is the mode OpenPath gives a file it creates.
const defaultFileMode = 0o644

// cleanPath checks and cleans an absolute slash-separated path. A ".."
// that would climb above the root is refused rather than clamped, so a
// path never silently names something other than what it says.
func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", wire.Errorf(wire.ErrInvalid, "client: path %q is not absolute", p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", wire.Errorf(wire.ErrInvalid, "client: path %q contains NUL", p)
	}
	depth := 0
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if depth == 0 {
				return "", wire.Errorf(wire.ErrInvalid, "client: path %q climbs above the root", p)
			}
			depth--
		default:
			depth++
		}
	}
	return path.Clean(p), nil
}

// splitPath cleans p and splits it into parent directory and name. The
// root has no name and is refused.
func splitPath(p string) (dir, name string, err error) {
	clean, err := cleanPath(p)
	if err != nil {
		return "", "", err
	}
	if clean == "/" {
		return "", "", wire.Errorf(wire.ErrInvalid, "client: path %q names the root", p)
	}
	dir, name = path.Split(clean)
	return path.Clean(dir), name, nil
}

// Resolve returns the attributes of the node at an absolute path, without
// following symlinks.
func (c *Client) Resolve(ctx context.Context, p string) (wire.Attr, error) {
	clean, err := cleanPath(p)
	if err != nil {
		return wire.Attr{}, err
	}
	var attr wire.Attr
	if err := c.call(ctx, wire.OpResolve, &wire.ResolveReq{Path: clean}, &attr); err != nil {
		return wire.Attr{}, err
	}
	return c.overlayAttr(attr), nil
}

// parentDir resolves the directory dir that an operation on a name in it
// needs, naming the path in the error when it is missing.
func (c *Client) parentDir(ctx context.Context, dir, op, p string) (wire.Attr, error) {
	attr, err := c.Resolve(ctx, dir)
	switch {
	case errors.Is(err, wire.ErrNotFound):
		return wire.Attr{}, wire.Errorf(wire.ErrNotFound, "client: %s %s: parent directory %s does not exist", op, p, dir)
	case err != nil:
		return wire.Attr{}, err
	case !attr.IsDir():
		return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "client: %s %s: %s is not a directory", op, p, dir)
	}
	return attr, nil
}

// MkdirAll creates the directory at path and any missing parents, owned
// by the calling process's uid and gid. An existing directory is fine; a
// non-directory in the way is ENOTDIR.
func (c *Client) MkdirAll(ctx context.Context, p string, mode uint32) (wire.Attr, error) {
	clean, err := cleanPath(p)
	if err != nil {
		return wire.Attr{}, err
	}
	attr, err := c.Resolve(ctx, clean)
	switch {
	case err == nil && attr.IsDir():
		return attr, nil
	case err == nil:
		return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "client: mkdir %s: exists and is not a directory", clean)
	case !errors.Is(err, wire.ErrNotFound):
		return wire.Attr{}, err
	}
	dir, name := path.Split(clean)
	parent, err := c.MkdirAll(ctx, path.Clean(dir), mode)
	if err != nil {
		return wire.Attr{}, err
	}
	attr, err = c.Mkdir(ctx, parent.Ino, name, mode, c.uid, c.gid)
	if errors.Is(err, wire.ErrExist) { // made concurrently, or a file in the way
		attr, err = c.Lookup(ctx, parent.Ino, name)
		if err == nil && !attr.IsDir() {
			return wire.Attr{}, wire.Errorf(wire.ErrNotDir, "client: mkdir %s: exists and is not a directory", clean)
		}
	}
	return attr, err
}

// CreatePath creates (or, without O_EXCL, opens) the regular file at path
// and opens it; the parent directory must exist.
func (c *Client) CreatePath(ctx context.Context, p string, mode uint32, flags int) (*File, error) {
	dir, name, err := splitPath(p)
	if err != nil {
		return nil, err
	}
	parent, err := c.parentDir(ctx, dir, "create", p)
	if err != nil {
		return nil, err
	}
	return c.Create(ctx, parent.Ino, name, mode, c.uid, c.gid, flags)
}

// OpenPath opens the regular file at path; with O_CREAT it is created
// (mode 0644) when missing.
func (c *Client) OpenPath(ctx context.Context, p string, flags int) (*File, error) {
	if flags&os.O_CREATE != 0 {
		return c.CreatePath(ctx, p, defaultFileMode, flags)
	}
	attr, f, err := c.ResolveOpen(ctx, p, flags)
	switch {
	case err != nil:
		return nil, err
	case attr.IsDir():
		return nil, wire.Errorf(wire.ErrIsDir, "client: open %s: a directory", p)
	case f == nil:
		return nil, wire.Errorf(wire.ErrInvalid, "client: open %s of mode %o: not a regular file", p, attr.Mode)
	}
	return f, nil
}

// RemovePath removes the file, symlink or empty directory at path; with
// recursive, a directory and everything below it. The root is refused.
func (c *Client) RemovePath(ctx context.Context, p string, recursive bool) error {
	dir, name, err := splitPath(p)
	if err != nil {
		return err
	}
	parent, err := c.parentDir(ctx, dir, "remove", p)
	if err != nil {
		return err
	}
	attr, err := c.Lookup(ctx, parent.Ino, name)
	if err != nil {
		return err
	}
	if !attr.IsDir() {
		return c.Unlink(ctx, parent.Ino, name)
	}
	if recursive {
		if err := c.removeChildren(ctx, attr.Ino); err != nil {
			return err
		}
	}
	return c.Rmdir(ctx, parent.Ino, name)
}

// removeChildren empties directory ino, depth first.
func (c *Client) removeChildren(ctx context.Context, ino uint64) error {
	entries, err := c.ReadDirAll(ctx, ino)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Attr.IsDir() {
			if err := c.removeChildren(ctx, e.Attr.Ino); err != nil {
				return err
			}
			err = c.Rmdir(ctx, ino, e.Name)
		} else {
			err = c.Unlink(ctx, ino, e.Name)
		}
		if err != nil && !errors.Is(err, wire.ErrNotFound) {
			return err
		}
	}
	return nil
}

// RenamePath moves the node at from to to, replacing a file there.
func (c *Client) RenamePath(ctx context.Context, from, to string) error {
	fdir, fname, err := splitPath(from)
	if err != nil {
		return err
	}
	tdir, tname, err := splitPath(to)
	if err != nil {
		return err
	}
	fp, err := c.parentDir(ctx, fdir, "rename", from)
	if err != nil {
		return err
	}
	tp := fp
	if tdir != fdir {
		if tp, err = c.parentDir(ctx, tdir, "rename", to); err != nil {
			return err
		}
	}
	return c.Rename(ctx, fp.Ino, fname, tp.Ino, tname, 0)
}
