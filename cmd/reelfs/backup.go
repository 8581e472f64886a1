package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
	"github.com/reelfs/reelfs/metaserver"
)

func backupCommand() command {
	return command{
		name: "backup", usage: "", summary: "save the namespace (every file, directory and block reference) of a running cluster to a file",
		long: "Asks the metaserver that leads (or runs alone) for one consistent snapshot of its\n" +
			"database and writes it to --output (atomically: FILE.tmp, fsync, rename). File\n" +
			"contents stay on the chunkservers; restore with 'reelfs restore'.",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			output := fs.StringP("output", "o", "", "file to write the backup to (required)")
			timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("backup takes no arguments")
				}
				if *output == "" {
					return usageError("--output FILE is required")
				}
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				data, addr, err := fetchBackup(ctx, o.meta, o.secret)
				if err != nil {
					return err
				}
				info, _, err := metaserver.CheckBackup(data)
				if err != nil {
					return fmt.Errorf("backup from %s: %w", addr, err)
				}
				if err := writeFileAtomic(*output, data); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "backup of %s: op-log seq %d, epoch %d, %d bytes in %s\n",
					addr, info.Seq, info.Epoch, info.Bytes, *output)
				return nil
			}
		},
	}
}

// fetchBackup asks each metaserver of the list in turn until one that
// leads (or runs alone) answers, for a few rounds (a failover may be
// under way).
func fetchBackup(ctx context.Context, metaList, secret string) ([]byte, string, error) {
	leaders, err := wire.ParseLeaders(metaList)
	if err != nil {
		return nil, "", usageError(err.Error())
	}
	hc := &fasthttp.Client{ReadTimeout: 5 * time.Minute, WriteTimeout: 10 * time.Second}
	var errs []string
	for round := 0; round < 5 && ctx.Err() == nil; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		for _, addr := range leaders.All() {
			data, err := getBackup(ctx, hc, addr, secret)
			if err == nil {
				return data, addr, nil
			}
			errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
			if errors.Is(err, wire.ErrUnauthorized) {
				return nil, "", describe(addr, err)
			}
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err().Error())
	}
	return nil, "", fmt.Errorf("no metaserver that leads answered: %s", strings.Join(errs[max(0, len(errs)-4):], "; "))
}

func getBackup(ctx context.Context, hc *fasthttp.Client, addr, secret string) ([]byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.PathBackup)
	req.Header.SetMethod(fasthttp.MethodGet)
	wire.SetAuth(req, secret)
	timeout := 5 * time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := hc.DoTimeout(req, resp, timeout); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, wire.ErrorFromResponse(resp)
	}
	return append([]byte(nil), resp.Body()...), nil
}

// writeFileAtomic writes data to path by way of path.tmp, fsyncing the
// file and its directory, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func restoreCommand() command {
	return command{
		name: "restore", usage: "FILE", summary: "write a namespace backup into a new metaserver directory (offline)",
		long: "--dir must not hold a metaserver yet. Start 'reelfs meta --dir DIR' on it afterwards\n" +
			"(with --ha: only after deleting the Consul state key; see docs/operations.md).\n" +
			"Block-id and inode counters and the epoch jump past anything handed out since\n" +
			"the backup, so no id is used twice.",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			dir := fs.String("dir", "", "the new metaserver's --dir (required; must not hold a metaserver)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want the backup FILE")
				}
				if *dir == "" {
					return usageError("--dir DIR is required")
				}
				data, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				info, err := metaserver.Restore(*dir, data, nil)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "restored %s into %s: op-log seq %d, epoch %d\n", args[0], *dir, info.Seq, info.Epoch)
				return nil
			}
		},
	}
}
