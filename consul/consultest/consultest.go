// Package consultest starts throwaway Consul dev agents on free loopback
// ports for tests.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// EnvBinary names the variable that points tests at a consul binary; without
// it they use bin/consul in the repository root (make consul puts it there).
const EnvBinary = "REELFS_CONSUL_BIN"

// Binary returns the consul binary tests should run: $REELFS_CONSUL_BIN, or
// bin/consul in the repository root (the nearest directory above the
// working directory that holds go.mod).
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("$%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "consul")
			if _, err := exec.LookPath(p); err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Agent is a running `consul agent -dev`: a single server that keeps its
// state in memory, so a restart loses every registration, session and key.
type Agent struct {
	// Addr is the agent's HTTP API address, host:port.
	Addr string
	// Node is the agent's node name.
	Node string

	t    testing.TB
	bin  string
	dir  string
	args []string

	mu     sync.Mutex // protects cmd, exit and starts
	cmd    *exec.Cmd
	exit   chan struct{} // closed when cmd has exited
	starts int           // agents started so far; each gets a new data dir
}

// Start starts a dev agent on free loopback ports, waits until it elected
// itself leader and its node's serfHealth passes, and stops it when the test
// ends. It skips the test when no consul binary is found.
func Start(t testing.TB) *Agent {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("consultest: no consul binary (run `make consul`, or set $%s): %v", EnvBinary, err)
	}
	ports := freePorts(t, 4)
	a := &Agent{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		Node: "reelfs-test",
		t:    t,
		bin:  bin,
		dir:  t.TempDir(),
	}
	a.args = []string{"agent", "-dev",
		"-node", a.Node,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]),
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-log-level", "info",
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			a.logTail()
		}
	})
	a.start()
	return a
}

// Client returns an api client for the agent.
func (a *Agent) Client() *api.Client {
	c, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		a.t.Fatalf("consultest: client: %v", err)
	}
	return c
}

func (a *Agent) start() {
	a.t.Helper()
	log, err := os.OpenFile(filepath.Join(a.dir, "consul.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.t.Fatalf("consultest: %v", err)
	}
	defer log.Close()
	a.mu.Lock()
	a.starts++
	data := filepath.Join(a.dir, fmt.Sprintf("data-%d", a.starts))
	a.mu.Unlock()
	// A new data dir each time: an agent persists API-registered services
	// there and would restore them, hiding what a lost agent loses.
	cmd := exec.Command(a.bin, append(a.args, "-data-dir", data)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("consultest: start %s: %v", a.bin, err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	a.mu.Lock()
	a.cmd, a.exit = cmd, exit
	a.mu.Unlock()
	if err := a.waitReady(exit, 60*time.Second); err != nil {
		a.logTail()
		a.t.Fatalf("consultest: agent on %s not ready: %v", a.Addr, err)
	}
}

// waitReady polls until the agent has a leader and its node's serfHealth
// passes: sessions can only be created after that.
func (a *Agent) waitReady(exit <-chan struct{}, limit time.Duration) error {
	c, err := api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			return errors.New("agent exited")
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		q := (&api.QueryOptions{}).WithContext(ctx)
		leader, err := c.Status().LeaderWithQueryOptions(q)
		if err == nil && leader == "" {
			err = errors.New("no leader yet")
		}
		if err == nil {
			var checks api.HealthChecks
			checks, _, err = c.Health().Node(a.Node, q)
			if err == nil && checks.AggregatedStatus() != api.HealthPassing {
				err = fmt.Errorf("node checks %s", checks.AggregatedStatus())
			}
			if err == nil && len(checks) == 0 {
				err = errors.New("node not registered yet")
			}
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("after %v: %w", limit, last)
}

// Stop kills the agent (SIGKILL: the state is in memory anyway) and waits
// for it to exit. Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, exit := a.cmd, a.exit
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exit
}

// Restart stops the agent and starts it again on the same ports with
// empty state and a new data dir, as a replaced agent would come back.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	a.start()
}

func (a *Agent) logTail() {
	b, err := os.ReadFile(filepath.Join(a.dir, "consul.log"))
	if err != nil {
		return
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	a.t.Logf("consultest: last lines of the agent's log:\n%s", bytes.Join(lines, []byte("\n")))
}

// freePorts returns n distinct free TCP ports on the loopback, holding
// them all open while choosing so none repeats.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("consultest: free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
