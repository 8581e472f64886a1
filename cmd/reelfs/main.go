// Command reelfs is the one binary of reelfs: the daemons (server, meta,
// chunk, httpd, live, mount) and the client commands (put, get, cat, ls,
// mkdir, rm, mv, stat, status, rmmember, backup, restore, sign, umount,
// version).
//
// The command line is parsed by cobra and pflag, GNU style: flags may come
// before or after the positional arguments, as --flag value or
// --flag=value, and -h/--help works on every command. The single-dash
// long flags of the earlier Go flag parser (-meta ADDR) are still read.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Default addresses of the all-in-one server; every client command finds
// the metaserver at defaultMeta unless --meta or REELFS_META says otherwise.
const (
	defaultMeta = "127.0.0.1:9400"
	defaultHTTP = "127.0.0.1:9480"
)

// command is one subcommand. define declares its flags on fs and returns
// the function that runs it with the positional arguments.
type command struct {
	name    string
	usage   string // argument synopsis
	summary string
	long    string // optional longer help, shown by --help
	define  func(fs *pflag.FlagSet, e *env) runFunc
}

type runFunc func(ctx context.Context, args []string) error

// env carries what every command shares: the process's streams and
// environment, so tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

func commands() []command {
	return []command{
		serverCommand(),
		metaCommand(),
		chunkCommand(),
		httpdCommand(),
		liveCommand(),
		mountCommand(),
		umountCommand(),
		putCommand(),
		getCommand(),
		catCommand(),
		lsCommand(),
		mkdirCommand(),
		rmCommand(),
		mvCommand(),
		statCommand(),
		statusCommand(),
		rmMemberCommand(),
		backupCommand(),
		restoreCommand(),
		signCommand(),
		versionCommand(),
	}
}

func main() {
	if err := startPprof(os.Getenv("REELFS_PPROF"), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reelfs:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// exitError ends a command with a given exit status; err, when not nil, is
// printed first.
type exitError struct {
	code int
	err  error
}

func (x exitError) Error() string {
	if x.err == nil {
		return fmt.Sprintf("exit status %d", x.code)
	}
	return x.err.Error()
}

func (x exitError) Unwrap() error { return x.err }

// usageError is a wrong command line; it exits with status 2.
type usageError string

func (u usageError) Error() string { return string(u) }

// cmdFailed marks an error a command's run function returned, as opposed
// to one cobra found in the command line.
type cmdFailed struct{ err error }

func (c cmdFailed) Error() string { return c.err.Error() }
func (c cmdFailed) Unwrap() error { return c.err }

// newRoot builds the command tree for one run.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "reelfs",
		Short: "reelfs: a distributed filesystem for media",
		Long: "reelfs: a distributed filesystem for media.\n\n" +
			"Client commands find the metaserver with --meta ADDR or $REELFS_META (default " + defaultMeta + ").\n" +
			"Flags may come before or after the arguments; run 'reelfs COMMAND --help' for a command's flags.",
		Version:       versionLine(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("reelfs {{.Version}}\n")
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetIn(e.stdin)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(err.Error() + " (see 'reelfs " + c.Name() + " --help')")
	})
	for _, c := range commands() {
		cc := &cobra.Command{
			Use:   strings.TrimSpace(c.name + " [flags] " + c.usage),
			Short: c.summary,
			Long:  c.summary,
		}
		if c.long != "" {
			cc.Long = c.summary + "\n\n" + c.long
		}
		fs := cc.Flags()
		fs.SortFlags = false
		runCmd := c.define(fs, e)
		if remote := remoteArgs(c.name); remote != nil {
			cc.ValidArgsFunction = completeRemote(remote)
		}
		cc.RunE = func(cmd *cobra.Command, args []string) error {
			if err := runCmd(cmd.Context(), args); err != nil {
				return cmdFailed{err}
			}
			return nil
		}
		root.AddCommand(cc)
	}
	// Listed in the help from the start, not only once cobra adds them
	// while executing.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// run executes one command line and returns the exit status: 0 done, 1
// failed, 2 a wrong command line (status has its own codes, see there).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdout: stdout, stderr: stderr, stdin: stdin, getenv: getenv}
	root := newRoot(e)
	if len(args) == 0 {
		root.Help()
		return 2
	}
	root.SetArgs(compatArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := "reelfs"
	if cmd != nil && cmd != root {
		name = "reelfs " + cmd.Name()
	}
	var failed cmdFailed
	if !errors.As(err, &failed) {
		// cobra's own: unknown command or flag, a missing flag value
		msg := oneLine(err)
		if cmd == root {
			msg += " (run 'reelfs help')"
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		return 2
	}
	var x exitError
	if errors.As(err, &x) {
		if x.err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(x.err))
		}
		return x.code
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(failed.err))
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// singleDashLong is a Go-flag-style long flag: -name or -name=value.
var singleDashLong = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// compatArgs rewrites -name to --name where name is a long flag of the
// command being run, so command lines written for the Go flag parser that
// reelfs used before keep working. Arguments after "--" are left alone.
func compatArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root {
		return args
	}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if m := singleDashLong.FindStringSubmatch(a); m != nil && cmd.Flags().Lookup(m[1]) != nil {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
