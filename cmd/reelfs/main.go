// Command reelfs is the one binary of reelfs: the daemons (server, meta,
// chunk, httpd, mount) and the client commands (put, get, cat, ls, mkdir,
// rm, mv, stat, status, sign, umount).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Default addresses of the all-in-one server; every client command finds
// the metaserver at defaultMeta unless --meta or REELFS_META says otherwise.
const (
	defaultMeta = "127.0.0.1:9400"
	defaultHTTP = "127.0.0.1:9480"
)

// command is one subcommand. define declares its flags on fs and returns
// the function that runs it with the remaining arguments.
type command struct {
	name    string
	usage   string // argument synopsis
	summary string
	define  func(fs *flag.FlagSet, e *env) runFunc
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
		signCommand(),
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "reelfs: a distributed filesystem for media\n\nUsage: reelfs COMMAND [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'reelfs COMMAND --help' for a command's flags.\n"+
		"Client commands find the metaserver with --meta ADDR or $REELFS_META (default %s).\n", defaultMeta)
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

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("reelfs "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		e := &env{stdout: stdout, stderr: stderr, stdin: stdin, getenv: getenv}
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage: reelfs %s [flags] %s\n\n%s\n\nFlags:\n", c.name, c.usage, c.summary)
			fs.PrintDefaults()
		}
		runCmd := c.define(fs, e)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if err := runCmd(ctx, fs.Args()); err != nil {
			fmt.Fprintf(stderr, "reelfs %s: %s\n", c.name, oneLine(err))
			var u usageError
			if errors.As(err, &u) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "reelfs: unknown command %q (run 'reelfs help')\n", args[0])
	return 2
}

// usageError is a wrong command line; it exits with status 2.
type usageError string

func (u usageError) Error() string { return string(u) }

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
