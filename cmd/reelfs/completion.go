package main

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/reelfs/reelfs/client"
)

// remoteArgs says which positional arguments of each client command are
// reelfs paths, for shell completion; the others complete as local files.
func remoteArgs(name string) func(i int) bool {
	switch name {
	case "put":
		return func(i int) bool { return i == 1 }
	case "get":
		return func(i int) bool { return i == 0 }
	case "cat", "ls", "mkdir", "rm", "mv", "stat", "sign":
		return func(int) bool { return true }
	}
	return nil
}

// completeRemote completes a reelfs path by listing its directory on the
// cluster the command's --meta and --secret name (given so far on the
// command line, else their defaults). It gives up quietly after two
// seconds: a completion must never hang a shell.
func completeRemote(remote func(int) bool) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if !remote(len(args)) {
			return nil, cobra.ShellCompDirectiveDefault
		}
		flag := func(name string) string {
			if f := cmd.Flags().Lookup(name); f != nil {
				return f.Value.String()
			}
			return ""
		}
		cfg := client.DefaultConfig()
		cfg.Meta, cfg.Secret = flag("meta"), flag("secret")
		if cfg.Meta == "" {
			cfg.Meta = defaultMeta
		}
		cfg.RetryTimeout = time.Second
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		c, err := client.New(cfg)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		head := toComplete[:strings.LastIndex(toComplete, "/")+1]
		prefix := toComplete[len(head):]
		dir := "/"
		if head != "" {
			dir = remotePath(head)
		}
		attr, err := c.Resolve(ctx, dir)
		if err != nil || !attr.IsDir() {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		entries, err := c.ReadDirAll(ctx, attr.Ino)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		directive := cobra.ShellCompDirectiveNoFileComp
		for _, de := range entries {
			if !strings.HasPrefix(de.Name, prefix) || (prefix == "" && strings.HasPrefix(de.Name, ".")) {
				continue
			}
			s := head + de.Name
			if de.Attr.IsDir() {
				s += "/"
				directive |= cobra.ShellCompDirectiveNoSpace // go on into it
			}
			out = append(out, s)
		}
		sort.Strings(out)
		return out, directive
	}
}
