// Command loopback mounts ORIGINAL at MOUNTPOINT through go-fuse's
// loopback filesystem with kernel passthrough disabled, so that every byte
// crosses the FUSE daemon as it does in reelfs. It is the bench's fair
// baseline for a user-space filesystem; the options are those of go-fuse's
// example/loopback (1 s attribute and entry timeouts, NullPermissions),
// which with passthrough on is the ceiling baseline.
//
//	loopback [-q] MOUNTPOINT ORIGINAL
//
// SIGINT or SIGTERM unmounts and exits.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
}

func run() error {
	quiet := flag.Bool("q", false, "print nothing once mounted")
	debug := flag.Bool("debug", false, "log every FUSE request")
	flag.Parse()
	if flag.NArg() != 2 {
		return fmt.Errorf("usage: loopback [-q] MOUNTPOINT ORIGINAL")
	}
	mnt, orig := flag.Arg(0), flag.Arg(1)
	root, err := fs.NewLoopbackRoot(orig)
	if err != nil {
		return fmt.Errorf("NewLoopbackRoot(%s): %w", orig, err)
	}
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout:     &sec,
		EntryTimeout:    &sec,
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			Debug:                *debug,
			FsName:               orig,
			Name:                 "loopback-nopassthrough",
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		},
	}
	server, err := fs.Mount(mnt, root, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	if !*quiet {
		fmt.Println("mounted", orig, "at", mnt, "(no passthrough)")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case <-sig:
		if err := server.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		<-done
	case <-done:
	}
	return nil
}
