package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// sumXattr holds the sha256 of a file's content as `put` wrote it, with
// the inode version it belongs to: "VERSION HEX". Every data change bumps
// the version, so a value whose version is not the file's is stale and
// ignored. It lets a re-run of put -r / get -r tell an identical file by
// size and checksum without reading the remote copy; where it is missing
// or stale (a file written through the mount or HTTP) the remote copy is
// read and hashed instead, and the value recorded for next time.
const sumXattr = "user.reelfs.sha256"

// recordSum stores sum as f's checksum at its current version. It is a
// cache: failing to store it costs only a read on the next comparison.
func recordSum(ctx context.Context, c *client.Client, ino, version uint64, sum []byte) {
	v := strconv.FormatUint(version, 10) + " " + hex.EncodeToString(sum)
	c.SetXattr(ctx, ino, sumXattr, []byte(v), 0)
}

// remoteSum returns the sha256 of the regular file attr: from sumXattr
// when it matches attr's version, else by reading the file (and recording
// the result).
func remoteSum(ctx context.Context, c *client.Client, attr wire.Attr) ([]byte, error) {
	if attr.Flags&wire.AttrHasXattrs != 0 {
		if v, err := c.GetXattr(ctx, attr.Ino, sumXattr); err == nil {
			ver, sum, ok := strings.Cut(string(v), " ")
			if b, err := hex.DecodeString(sum); ok && err == nil && len(b) == sha256.Size && ver == strconv.FormatUint(attr.Version, 10) {
				return b, nil
			}
		}
	}
	f, err := c.Open(ctx, attr.Ino, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close(ctx)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f.IO(ctx), make([]byte, 1<<20)); err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	if f.Version() == attr.Version {
		recordSum(ctx, c, attr.Ino, attr.Version, sum)
	}
	return sum, nil
}

func localSum(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// identical reports whether the local file and the remote one have the
// same size and sha256.
func identical(ctx context.Context, c *client.Client, local string, localSize int64, remote wire.Attr) (bool, error) {
	if !remote.IsRegular() || remote.Size != uint64(localSize) {
		return false, nil
	}
	ls, err := localSum(local)
	if err != nil {
		return false, err
	}
	rs, err := remoteSum(ctx, c, remote)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ls, rs), nil
}

// treeStats counts what a tree copy did; safe for concurrent use.
type treeStats struct {
	files, copied, skipped, failed atomic.Int64
	bytes                          atomic.Int64 // copied
}

func (s *treeStats) report(e *env, what string) error {
	fmt.Fprintf(e.stderr, "%s: %d files: %d copied (%s), %d identical skipped, %d failed\n", what,
		s.files.Load(), s.copied.Load(), human(uint64(s.bytes.Load())), s.skipped.Load(), s.failed.Load())
	if n := s.failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d files failed", n, s.files.Load())
	}
	return nil
}

// treeFile is a regular file of a tree, by its path relative to the root.
type treeFile struct {
	rel  string
	size int64
	mode fs.FileMode
	attr wire.Attr // the remote file's (get -r)
}

// putTree copies the tree under localDir into remoteDir (created when
// missing): like `rsync -r localDir/ remoteDir/`, so a re-run lands on the
// same paths and skips the files that are already identical. parallel
// files are in flight at once. Other files than regular ones and
// directories are skipped with a warning.
func putTree(ctx context.Context, c *client.Client, e *env, localDir, remoteDir string, parallel int, progress bool) error {
	// The root may be a symbolic link to the directory (WalkDir would not
	// follow it); links inside the tree are skipped.
	root, err := filepath.EvalSymlinks(localDir)
	if err != nil {
		return err
	}
	if info, err := os.Stat(root); err != nil {
		return err
	} else if !info.IsDir() {
		return fmt.Errorf("%s: not a directory (put -r copies a directory tree; put copies a file)", localDir)
	}
	localDir = root
	var dirs []string
	var files []treeFile
	var total int64
	err = filepath.WalkDir(localDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(localDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			if rel != "." {
				dirs = append(dirs, rel)
			}
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, treeFile{rel: rel, size: info.Size(), mode: info.Mode()})
			total += info.Size()
		default:
			fmt.Fprintf(e.stderr, "reelfs put: skipping %s: not a regular file or directory (links are not followed)\n", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	top, err := c.MkdirAll(ctx, remoteDir, 0o755)
	if err != nil {
		return describe(remoteDir, err)
	}
	// Directories first, parents before children (WalkDir's order), so
	// every file's parent inode is known before the files go in parallel.
	inos := map[string]uint64{".": top.Ino}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for _, rel := range dirs {
		parent, name := inos[path.Dir(rel)], path.Base(rel)
		a, err := c.Mkdir(ctx, parent, name, 0o755, uid, gid)
		if errors.Is(err, wire.ErrExist) {
			a, err = c.Lookup(ctx, parent, name)
			if err == nil && !a.IsDir() {
				err = wire.ErrNotDir
			}
		}
		if err != nil {
			return describe(path.Join(remoteDir, rel), err)
		}
		inos[rel] = a.Ino
	}

	var st treeStats
	bar := newProgress(e.stderr, progress, total, "put "+remoteDir)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	var errMu sync.Mutex // serializes the failure lines
	for _, tf := range files {
		if gctx.Err() != nil {
			break
		}
		st.files.Add(1)
		g.Go(func() error {
			dst := path.Join(remoteDir, tf.rel)
			src := filepath.Join(localDir, filepath.FromSlash(tf.rel))
			copied, err := putTreeFile(gctx, c, inos[path.Dir(tf.rel)], path.Base(tf.rel), src, tf, uid, gid, bar)
			switch {
			case err != nil:
				st.failed.Add(1)
				errMu.Lock()
				fmt.Fprintf(e.stderr, "reelfs put: %s\n", oneLine(describe(dst, err)))
				errMu.Unlock()
			case copied:
				st.copied.Add(1)
				st.bytes.Add(tf.size)
			default:
				st.skipped.Add(1)
				bar.add(tf.size)
			}
			return nil // one file's failure does not stop the others
		})
	}
	g.Wait()
	bar.finish()
	if err := ctx.Err(); err != nil {
		return err
	}
	return st.report(e, "put -r "+localDir)
}

// putTreeFile copies one file unless the remote one is identical; it
// reports whether it copied.
func putTreeFile(ctx context.Context, c *client.Client, parent uint64, name, src string, tf treeFile, uid, gid uint32, bar io.Writer) (bool, error) {
	if a, err := c.Lookup(ctx, parent, name); err == nil {
		same, err := identical(ctx, c, src, tf.size, a)
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
	} else if !errors.Is(err, wire.ErrNotFound) {
		return false, err
	}
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	f, err := c.Create(ctx, parent, name, uint32(tf.mode.Perm()), uid, gid, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return false, err
	}
	return true, writeAndRecord(ctx, c, f, in, tf.size, bar)
}

// writeAndRecord copies src into the new file f, makes it durable, closes
// it and records its sha256 in sumXattr.
// size (-1: unknown) sizes the copy buffer.
func writeAndRecord(ctx context.Context, c *client.Client, f *client.File, src io.Reader, size int64, bar io.Writer) error {
	h := sha256.New()
	_, err := io.CopyBuffer(io.MultiWriter(f.IO(ctx), h, bar), onlyReader{src}, copyBuffer(size))
	if err == nil {
		err = f.Sync(ctx)
	}
	if err != nil {
		f.Close(ctx)
		return err
	}
	recordSum(ctx, c, f.Ino(), f.Version(), h.Sum(nil))
	return f.Close(ctx)
}

// getTree copies the tree under remoteDir into localDir (created when
// missing), like `rsync -r remoteDir/ localDir/`, skipping local files
// that are already identical; parallel files are in flight at once.
func getTree(ctx context.Context, c *client.Client, e *env, remoteDir, localDir string, parallel int, progress bool) error {
	root, err := c.Resolve(ctx, remoteDir)
	if err != nil {
		return describe(remoteDir, err)
	}
	if !root.IsDir() {
		return fmt.Errorf("%s: not a directory (get -r copies a directory tree)", remoteDir)
	}
	var files []treeFile
	var total int64
	if err := os.MkdirAll(localDir, 0o755); err != nil {
		return err
	}
	// breadth-first over the remote tree; each directory is made locally
	// as it is found
	type dir struct {
		rel string
		ino uint64
	}
	queue := []dir{{".", root.Ino}}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		entries, err := c.ReadDirAll(ctx, d.ino)
		if err != nil {
			return describe(path.Join(remoteDir, d.rel), err)
		}
		for _, de := range entries {
			rel := path.Join(d.rel, de.Name)
			switch {
			case de.Attr.IsDir():
				if err := os.MkdirAll(filepath.Join(localDir, filepath.FromSlash(rel)), 0o755); err != nil {
					return err
				}
				queue = append(queue, dir{rel, de.Attr.Ino})
			case de.Attr.IsRegular():
				files = append(files, treeFile{rel: rel, size: int64(de.Attr.Size), mode: fs.FileMode(de.Attr.Mode & wire.ModePerm), attr: de.Attr})
				total += int64(de.Attr.Size)
			default:
				fmt.Fprintf(e.stderr, "reelfs get: skipping %s: not a regular file or directory\n", path.Join(remoteDir, rel))
			}
		}
	}

	var st treeStats
	bar := newProgress(e.stderr, progress, total, "get "+remoteDir)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	var errMu sync.Mutex
	for _, tf := range files {
		if gctx.Err() != nil {
			break
		}
		st.files.Add(1)
		g.Go(func() error {
			local := filepath.Join(localDir, filepath.FromSlash(tf.rel))
			copied, err := getTreeFile(gctx, c, tf, local, bar)
			switch {
			case err != nil:
				st.failed.Add(1)
				errMu.Lock()
				fmt.Fprintf(e.stderr, "reelfs get: %s\n", oneLine(describe(path.Join(remoteDir, tf.rel), err)))
				errMu.Unlock()
			case copied:
				st.copied.Add(1)
				st.bytes.Add(tf.size)
			default:
				st.skipped.Add(1)
				bar.add(tf.size)
			}
			return nil
		})
	}
	g.Wait()
	bar.finish()
	if err := ctx.Err(); err != nil {
		return err
	}
	return st.report(e, "get -r "+remoteDir)
}

// getTreeFile copies one remote file to local unless local is identical;
// it reports whether it copied.
func getTreeFile(ctx context.Context, c *client.Client, tf treeFile, local string, bar io.Writer) (bool, error) {
	if info, err := os.Stat(local); err == nil && info.Mode().IsRegular() {
		same, err := identical(ctx, c, local, info.Size(), tf.attr)
		if err != nil {
			return false, err
		}
		if same {
			return false, nil
		}
	}
	f, err := c.Open(ctx, tf.attr.Ino, os.O_RDONLY)
	if err != nil {
		return false, err
	}
	defer f.Close(ctx)
	return true, download(ctx, f, local, tf.mode, bar)
}

// download writes f to local through a temporary file renamed into place,
// so a reader never sees a half-written file.
func download(ctx context.Context, f *client.File, local string, mode fs.FileMode, bar io.Writer) error {
	tmp := local + ".reelfs-part"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op after the rename
	_, err = io.CopyBuffer(io.MultiWriter(out, bar), f.IO(ctx), copyBuffer(f.Size()))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, local)
}

// onlyReader hides an *os.File's WriteTo, which io.CopyBuffer would call
// and which copies through its own 32 KiB buffer instead of ours: each
// write into a reelfs file should be large.
type onlyReader struct{ io.Reader }

// copyBuffer is a buffer for copying size bytes (-1: unknown): at most
// 4 MiB, a block, and no bigger than the file, so a tree of small files
// does not allocate megabytes per file.
func copyBuffer(size int64) []byte {
	const most = 4 << 20
	if size < 0 || size > most {
		return make([]byte, most)
	}
	return make([]byte, max(size, 4<<10)+1) // +1: the read that sees EOF
}
