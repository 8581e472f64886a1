package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cmdResult is a finished command: its output and wall time.
type cmdResult struct {
	stdout, stderr string
	elapsed        time.Duration // from fork to exit
}

// run runs a command to completion within limit. When stdout is nil the
// output is captured; otherwise it goes to stdout (for example /dev/null,
// so that the child writes straight into it without a pipe).
func (r *runner) run(ctx context.Context, limit time.Duration, stdout *os.File, name string, args ...string) (cmdResult, error) {
	return r.runEnv(ctx, limit, stdout, nil, name, args...)
}

func (r *runner) runEnv(ctx context.Context, limit time.Duration, stdout *os.File, env []string, name string, args ...string) (cmdResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errb bytes.Buffer
	if stdout != nil {
		cmd.Stdout = stdout
	} else {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Run()
	res := cmdResult{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s: stopped after %s: %w", name, limit, ctx.Err())
		}
		return res, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, tail(res.stderr, 400))
	}
	return res, nil
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// child is a long-running process (reelfs server, nginx, a loopback
// mount) whose output goes to a log file.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid after done
	ready   chan struct{} // closed when readyLine was printed
}

// startChild starts argv with stdout and stderr appended to logPath. When
// readyLine is set, the child is ready once it prints a line starting
// with it on stdout; waitReady waits for that.
func startChild(name, logPath, readyLine string, env []string, argv ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	// The children die with the bench even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stderr = logf
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{}), ready: make(chan struct{})}
	var pipe io.ReadCloser
	if readyLine != "" {
		if pipe, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	fmt.Fprintf(logf, "---- %s: %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var copied sync.WaitGroup
	if pipe != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			sc := bufio.NewScanner(pipe)
			seen := false
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(logf, line)
				if !seen && strings.HasPrefix(line, readyLine) {
					seen = true
					close(c.ready)
				}
			}
			io.Copy(io.Discard, pipe)
		}()
	}
	go func() {
		copied.Wait() // Wait closes the pipe: read it to the end first
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// waitReady waits until the child printed its ready line, or fails when
// it exits or limit passes first.
func (c *child) waitReady(ctx context.Context, limit time.Duration) error {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before it was ready (%v): %s", c.name, c.err, c.logTail())
	case <-t.C:
		return fmt.Errorf("%s not ready after %s: %s", c.name, limit, c.logTail())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the child's log without the "----" lines that
// name each start.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "---- ") {
			keep = append(keep, l)
		}
	}
	s := tail(strings.Join(keep, "\n"), 600)
	if s == "" {
		return "(no output)"
	}
	return s
}

// stop sends SIGTERM and waits up to limit for the exit, then kills.
// It returns an error when the process had to be killed.
func (c *child) stop(limit time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("stop %s: no exit %s after SIGTERM, killed", c.name, limit)
}

// freeAddrs returns n loopback addresses whose ports were free just now.
// All listeners are open at once so the ports differ.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, limit time.Duration, c *child) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if c != nil && c.exited() {
			return fmt.Errorf("%s exited (%v): %s", c.name, c.err, c.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening after %s", addr, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
