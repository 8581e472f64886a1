package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// clientOpts are the flags every client command shares.
type clientOpts struct {
	meta   string
	secret string
	retry  time.Duration // how long calls retry an unreachable cluster (0: 10 s)
	// commitEvery, when set, is client.Config.CommitEvery (the mount's
	// --commit-every); nil keeps the default.
	commitEvery *time.Duration
}

// commitFlag defines --commit-every, the bound on how long a mount keeps
// written bytes before committing them.
func commitFlag(fs *pflag.FlagSet) *time.Duration {
	return fs.Duration("commit-every", client.DefaultConfig().CommitEvery,
		"commit what a file open for writing holds at most this long after it was written: other mounts see it grow, and a crash loses at most about this much (0: only at close and fsync)")
}

func defineClientFlags(fs *pflag.FlagSet, e *env) *clientOpts {
	o := &clientOpts{}
	meta := e.getenv("REELFS_META")
	if meta == "" {
		meta = defaultMeta
	}
	fs.StringVar(&o.meta, "meta", meta, "metaserver address (env REELFS_META)")
	fs.StringVar(&o.secret, "secret", e.getenv("REELFS_SECRET"), "cluster secret (env REELFS_SECRET)")
	return o
}

// daemonRetry is how long the long-lived clients (mount, httpd, live)
// retry an unreachable or leaderless cluster before an operation fails:
// long enough to ride through a metaserver failover (1.3-3.7 s measured,
// 5 s more when the old leader is stopped rather than dead) and a
// chunkserver restart. One-shot commands give up after 10 s.
const daemonRetry = time.Minute

// connect builds a client; the caller closes it.
func (o *clientOpts) connect(e *env) (*client.Client, error) {
	cfg := client.DefaultConfig()
	cfg.Meta = o.meta
	cfg.Secret = o.secret
	cfg.RetryTimeout = 10 * time.Second
	if o.retry > 0 {
		cfg.RetryTimeout = o.retry
	}
	if o.commitEvery != nil {
		cfg.CommitEvery = *o.commitEvery
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	return client.New(cfg)
}

// with runs fn with a connected client and closes it after.
func (o *clientOpts) with(e *env, fn func(c *client.Client) error) error {
	c, err := o.connect(e)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// remotePath turns a command-line path into a clean absolute reelfs path.
func remotePath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

// describe rewrites a wire error into the words a user expects; nil stays
// nil.
func describe(p string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wire.ErrNotFound):
		return fmt.Errorf("%s: no such file or directory", p)
	case errors.Is(err, wire.ErrExist):
		return fmt.Errorf("%s: already exists", p)
	case errors.Is(err, wire.ErrNotDir):
		return fmt.Errorf("%s: not a directory", p)
	case errors.Is(err, wire.ErrIsDir):
		return fmt.Errorf("%s: is a directory", p)
	case errors.Is(err, wire.ErrNotEmpty):
		return fmt.Errorf("%s: directory not empty", p)
	case errors.Is(err, wire.ErrNoSpace):
		return fmt.Errorf("%s: no space left in the cluster (%w)", p, err)
	case errors.Is(err, wire.ErrUnauthorized):
		return fmt.Errorf("%s: the cluster refused the secret (set --secret or REELFS_SECRET)", p)
	case errors.Is(err, wire.ErrUnavailable):
		return fmt.Errorf("%s: cluster unreachable: %w", p, err)
	}
	return fmt.Errorf("%s: %w", p, err)
}

func putCommand() command {
	return command{
		name: "put", usage: "LOCAL REMOTE", summary: "copy a local file into reelfs (REMOTE may be a directory; LOCAL - reads stdin; -r: a tree)",
		long: "put -r LOCALDIR REMOTEDIR copies the tree under LOCALDIR into REMOTEDIR (made when missing),\n" +
			"like rsync -r LOCALDIR/ REMOTEDIR/: a re-run skips every file whose size and sha256 are the\n" +
			"same on both sides. put records each file's sha256 in the xattr " + sumXattr + ", so the\n" +
			"check reads only the local copy; a remote file without it (written by the mount or HTTP) is read.",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			progress := fs.Bool("progress", isTerminal(e.stderr), "show progress (default: when stderr is a terminal)")
			recursive := fs.BoolP("recursive", "r", false, "copy a directory tree, skipping files already identical")
			parallel := fs.Int("parallel", 8, "files in flight at once with -r")
			return func(ctx context.Context, args []string) error {
				if len(args) != 2 {
					return usageError("want LOCAL and REMOTE")
				}
				if *parallel < 1 {
					return usageError("--parallel wants at least 1")
				}
				return o.with(e, func(c *client.Client) error {
					if *recursive {
						return putTree(ctx, c, e, args[0], remotePath(args[1]), *parallel, *progress)
					}
					return put(ctx, c, e, args[0], args[1], *progress)
				})
			}
		},
	}
}

func put(ctx context.Context, c *client.Client, e *env, local, remote string, progress bool) error {
	var src io.Reader = e.stdin
	size := int64(-1)
	name := "stdin"
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s: is a directory (put -r copies a tree)", local)
		}
		src, size, name = f, st.Size(), filepath.Base(local)
	}
	dst := remotePath(remote)
	if strings.HasSuffix(remote, "/") {
		dst = path.Join(dst, name)
	} else if a, err := c.Resolve(ctx, dst); err == nil && a.IsDir() {
		dst = path.Join(dst, name)
	}
	f, err := c.CreatePath(ctx, dst, 0o644, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return describe(dst, err)
	}
	bar := newProgress(e.stderr, progress, size, "put "+dst)
	err = writeAndRecord(ctx, c, f, src, size, bar)
	bar.finish()
	return describe(dst, err)
}

func getCommand() command {
	return command{
		name: "get", usage: "REMOTE [LOCAL]", summary: "copy a file out of reelfs (LOCAL defaults to the base name; - writes stdout; -r: a tree)",
		long: "get -r REMOTEDIR LOCALDIR copies the tree under REMOTEDIR into LOCALDIR (made when missing),\n" +
			"like rsync -r REMOTEDIR/ LOCALDIR/: a re-run skips every file whose size and sha256 are the\n" +
			"same on both sides (the remote sha256 comes from the xattr " + sumXattr + " that put records).",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			progress := fs.Bool("progress", isTerminal(e.stderr), "show progress (default: when stderr is a terminal)")
			recursive := fs.BoolP("recursive", "r", false, "copy a directory tree, skipping files already identical")
			parallel := fs.Int("parallel", 8, "files in flight at once with -r")
			return func(ctx context.Context, args []string) error {
				if len(args) < 1 || len(args) > 2 {
					return usageError("want REMOTE [LOCAL]")
				}
				if *parallel < 1 {
					return usageError("--parallel wants at least 1")
				}
				local := path.Base(remotePath(args[0]))
				if len(args) == 2 {
					local = args[1]
				}
				return o.with(e, func(c *client.Client) error {
					if *recursive {
						return getTree(ctx, c, e, remotePath(args[0]), local, *parallel, *progress)
					}
					return get(ctx, c, e, remotePath(args[0]), local, *progress)
				})
			}
		},
	}
}

func get(ctx context.Context, c *client.Client, e *env, src, local string, progress bool) error {
	f, err := c.OpenPath(ctx, src, os.O_RDONLY)
	if err != nil {
		return describe(src, err)
	}
	defer f.Close(ctx)
	if !f.Attr().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	var w io.Writer = e.stdout
	var out *os.File
	if local != "-" {
		if st, err := os.Stat(local); err == nil && st.IsDir() {
			local = filepath.Join(local, path.Base(src))
		}
		tmp := local + ".reelfs-part"
		out, err = os.Create(tmp)
		if err != nil {
			return err
		}
		defer os.Remove(tmp) // no-op after the rename
		w = out
	}
	bar := newProgress(e.stderr, progress && local != "-", f.Size(), "get "+src)
	_, err = io.CopyBuffer(io.MultiWriter(w, bar), f.IO(ctx), make([]byte, 4<<20))
	bar.finish()
	if err != nil {
		if out != nil {
			out.Close()
		}
		return describe(src, err)
	}
	if out == nil {
		return nil
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), local)
}

func catCommand() command {
	return command{
		name: "cat", usage: "REMOTE...", summary: "write files to stdout",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want at least one REMOTE")
				}
				return o.with(e, func(c *client.Client) error {
					for _, a := range args {
						if err := get(ctx, c, e, remotePath(a), "-", false); err != nil {
							return err
						}
					}
					return nil
				})
			}
		},
	}
}

func lsCommand() command {
	return command{
		name: "ls", usage: "[PATH...]", summary: "list directories (-l for details)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			long := fs.BoolP("long", "l", false, "long listing: mode, links, owner, size, mtime")
			asJSON := fs.Bool("json", false, "print a JSON array of entries (path, name, type, mode, size, times, ...)")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					args = []string{"/"}
				}
				return o.with(e, func(c *client.Client) error {
					if *asJSON {
						return lsJSON(ctx, c, e, args)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 8, 1, ' ', tabwriter.AlignRight*0)
					defer tw.Flush()
					for _, a := range args {
						p := remotePath(a)
						attr, err := c.Resolve(ctx, p)
						if err != nil {
							return describe(p, err)
						}
						if len(args) > 1 && attr.IsDir() {
							fmt.Fprintf(tw, "%s:\n", p)
						}
						entries := []wire.DirEntry{{Name: path.Base(p), Attr: attr}}
						if attr.IsDir() {
							if entries, err = c.ReadDirAll(ctx, attr.Ino); err != nil {
								return describe(p, err)
							}
						}
						for _, de := range entries {
							if *long {
								fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", modeString(de.Attr.Mode), de.Attr.Nlink,
									de.Attr.Uid, de.Attr.Gid, de.Attr.Size,
									time.Unix(0, de.Attr.Mtime).Format("2006-01-02 15:04"), de.Name)
							} else {
								fmt.Fprintln(tw, de.Name)
							}
						}
					}
					return nil
				})
			}
		},
	}
}

// modeString renders a mode like ls -l does.
func modeString(m uint32) string {
	t := byte('-')
	switch m & wire.ModeType {
	case wire.ModeDir:
		t = 'd'
	case wire.ModeSymlink:
		t = 'l'
	case wire.ModeFIFO:
		t = 'p'
	case wire.ModeSocket:
		t = 's'
	case wire.ModeChar:
		t = 'c'
	case wire.ModeBlock:
		t = 'b'
	}
	const rwx = "rwxrwxrwx"
	b := []byte{t}
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

func mkdirCommand() command {
	return command{
		name: "mkdir", usage: "PATH...", summary: "make directories (-p: parents too, no error if existing)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			parents := fs.BoolP("parents", "p", false, "make parent directories as needed")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want at least one PATH")
				}
				return o.with(e, func(c *client.Client) error {
					for _, a := range args {
						p := remotePath(a)
						if *parents {
							if _, err := c.MkdirAll(ctx, p, 0o755); err != nil {
								return describe(p, err)
							}
							continue
						}
						parent, err := c.Resolve(ctx, path.Dir(p))
						if err != nil {
							return describe(path.Dir(p), err)
						}
						if _, err := c.Mkdir(ctx, parent.Ino, path.Base(p), 0o755, uint32(os.Getuid()), uint32(os.Getgid())); err != nil {
							return describe(p, err)
						}
					}
					return nil
				})
			}
		},
	}
}

func rmCommand() command {
	return command{
		name: "rm", usage: "PATH...", summary: "remove files (-r: directories and their contents)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			recursive := fs.BoolP("recursive", "r", false, "remove directories and their contents")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want at least one PATH")
				}
				return o.with(e, func(c *client.Client) error {
					for _, a := range args {
						p := remotePath(a)
						if p == "/" {
							return fmt.Errorf("refusing to remove /")
						}
						if err := c.RemovePath(ctx, p, *recursive); err != nil {
							return describe(p, err)
						}
					}
					return nil
				})
			}
		},
	}
}

func mvCommand() command {
	return command{
		name: "mv", usage: "FROM TO", summary: "rename or move a file or directory",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) != 2 {
					return usageError("want FROM and TO")
				}
				return o.with(e, func(c *client.Client) error {
					from, to := remotePath(args[0]), remotePath(args[1])
					if a, err := c.Resolve(ctx, to); err == nil && a.IsDir() {
						to = path.Join(to, path.Base(from))
					}
					return describe(from, c.RenamePath(ctx, from, to))
				})
			}
		},
	}
}

func statCommand() command {
	return command{
		name: "stat", usage: "PATH...", summary: "show inode attributes",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			asJSON := fs.Bool("json", false, "print a JSON array, one object per PATH")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usageError("want at least one PATH")
				}
				return o.with(e, func(c *client.Client) error {
					var out []entryJSON
					for _, a := range args {
						p := remotePath(a)
						at, err := c.Resolve(ctx, p)
						if err != nil {
							return describe(p, err)
						}
						if *asJSON {
							out = append(out, newEntryJSON(p, at))
							continue
						}
						fmt.Fprintf(e.stdout, "  Path: %s\n  Inode: %d  Mode: %s (%04o)  Links: %d\n  Uid: %d  Gid: %d  Size: %d  Version: %d\n"+
							"  Access: %s\n  Modify: %s\n  Change: %s\n",
							p, at.Ino, modeString(at.Mode), at.Mode&wire.ModePerm, at.Nlink, at.Uid, at.Gid, at.Size, at.Version,
							fmtTime(at.Atime), fmtTime(at.Mtime), fmtTime(at.Ctime))
					}
					if *asJSON {
						return writeJSON(e.stdout, out)
					}
					return nil
				})
			}
		},
	}
}

func rmMemberCommand() command {
	return command{
		name: "rmmember", usage: "GROUP ID", summary: "retire a chunkserver whose disk is gone: placement, the in-sync set and deletes stop waiting for it",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) != 2 {
					return usageError("want GROUP and the member ID (see reelfs status)")
				}
				g, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil || g == 0 {
					return usageError(fmt.Sprintf("GROUP %q: want a group number", args[0]))
				}
				return o.with(e, func(c *client.Client) error {
					if err := c.RemoveMember(ctx, uint32(g), args[1]); err != nil {
						return describe(args[1], err)
					}
					fmt.Fprintf(e.stdout, "removed %s from group %d\n", args[1], g)
					return nil
				})
			}
		},
	}
}

// entryJSON is a file as ls --json and stat --json print it.
type entryJSON struct {
	Path    string    `json:"path"`
	Name    string    `json:"name"`
	Type    string    `json:"type"` // file, dir, symlink, fifo, socket, char or block
	Mode    string    `json:"mode"` // as ls -l shows it
	Perm    uint32    `json:"perm"` // permission bits
	Ino     uint64    `json:"ino"`
	Nlink   uint32    `json:"nlink"`
	Uid     uint32    `json:"uid"`
	Gid     uint32    `json:"gid"`
	Size    uint64    `json:"size"`
	Version uint64    `json:"version"`
	Atime   time.Time `json:"atime"`
	Mtime   time.Time `json:"mtime"`
	Ctime   time.Time `json:"ctime"`
}

func newEntryJSON(p string, a wire.Attr) entryJSON {
	t := map[uint32]string{wire.ModeDir: "dir", wire.ModeSymlink: "symlink", wire.ModeFIFO: "fifo",
		wire.ModeSocket: "socket", wire.ModeChar: "char", wire.ModeBlock: "block"}[a.Mode&wire.ModeType]
	if t == "" {
		t = "file"
	}
	return entryJSON{Path: p, Name: path.Base(p), Type: t, Mode: modeString(a.Mode), Perm: a.Mode & wire.ModePerm,
		Ino: a.Ino, Nlink: a.Nlink, Uid: a.Uid, Gid: a.Gid, Size: a.Size, Version: a.Version,
		Atime: time.Unix(0, a.Atime).UTC(), Mtime: time.Unix(0, a.Mtime).UTC(), Ctime: time.Unix(0, a.Ctime).UTC()}
}

// lsJSON prints one JSON array of the entries of every directory in args
// (a file stands for itself).
func lsJSON(ctx context.Context, c *client.Client, e *env, args []string) error {
	out := []entryJSON{}
	for _, a := range args {
		p := remotePath(a)
		attr, err := c.Resolve(ctx, p)
		if err != nil {
			return describe(p, err)
		}
		if !attr.IsDir() {
			out = append(out, newEntryJSON(p, attr))
			continue
		}
		entries, err := c.ReadDirAll(ctx, attr.Ino)
		if err != nil {
			return describe(p, err)
		}
		for _, de := range entries {
			out = append(out, newEntryJSON(path.Join(p, de.Name), de.Attr))
		}
	}
	return writeJSON(e.stdout, out)
}

func fmtTime(ns int64) string { return time.Unix(0, ns).Format("2006-01-02 15:04:05.000000000 -0700") }

// groupState says whether a group takes new blocks.
func groupState(g wire.Group) string {
	n := 0
	for _, m := range g.Members {
		if m.InSync && m.Healthy && !m.Full {
			n++
		}
	}
	if n >= g.MinCopies {
		return "takes writes"
	}
	return fmt.Sprintf("NO WRITES (%d writable in-sync members, needs %d)", n, g.MinCopies)
}

// memberState is a member's part in replication: in-sync, resyncing from
// a peer (with progress), catching up, full or down.
func memberState(m wire.Member) string {
	switch {
	case !m.Healthy:
		return "down"
	case m.Full:
		return "full"
	}
	for _, src := range m.Sources {
		if src.Resync {
			return fmt.Sprintf("resyncing from %s %d/%d", src.ID, src.Done, src.Total)
		}
	}
	if m.InSync {
		return "in-sync"
	}
	return "catching up"
}

// memberLag is how far m is behind its peers' binlogs, as the peers (its
// sources) report it: the worst entries and bytes.
func memberLag(g wire.Group, m wire.Member) string {
	var entries, bytes uint64
	for _, p := range g.Members {
		for _, f := range p.Followers {
			if f.ID == m.ID && p.ID != m.ID {
				entries = max(entries, f.Behind)
				bytes = max(bytes, f.BehindBytes)
			}
		}
	}
	if entries == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", entries, human(bytes))
}

// scrubState summarizes a member's scrubber.
func scrubState(r *wire.ScrubReport) string {
	if r == nil {
		return "-"
	}
	s := "no pass yet"
	if r.LastPass != 0 {
		s = fmt.Sprintf("pass %d %s ago", r.Passes, time.Since(time.Unix(0, r.LastPass)).Round(time.Second))
	}
	if r.Damaged > 0 || r.Repaired > 0 || r.Unrepairable > 0 {
		s += fmt.Sprintf(", damaged %d repaired %d unrepairable %d", r.Damaged, r.Repaired, r.Unrepairable)
	}
	return s
}

// human formats a byte count with binary units.
func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
