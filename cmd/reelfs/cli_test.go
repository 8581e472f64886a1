package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/reelfs/reelfs/internal/wire"
)

// TestFlagsAnywhere parses every flag of every command before and after a
// positional argument, as --flag value, --flag=value and the Go-flag
// style -flag value, and checks that the flag is set and the positional
// is left alone.
func TestFlagsAnywhere(t *testing.T) {
	e := &env{stdout: &strings.Builder{}, stderr: &strings.Builder{}, getenv: func(string) string { return "" }}
	n := 0
	for _, c := range commands() {
		fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
		c.define(fs, e)
		fs.VisitAll(func(f *pflag.Flag) {
			val := f.DefValue
			if f.Value.Type() == "bool" {
				val = "true"
			}
			if val == "" || val == "[]" {
				val = "x"
				if f.Value.Type() != "string" {
					return // no sample value for a non-string flag with an empty default
				}
			}
			forms := map[string][]string{
				"--flag value after":  {c.name, "POS", "--" + f.Name, val},
				"--flag=value after":  {c.name, "POS", "--" + f.Name + "=" + val},
				"--flag value before": {c.name, "--" + f.Name, val, "POS"},
				"-flag value after":   {c.name, "POS", "-" + f.Name, val},
			}
			if f.Value.Type() == "bool" {
				forms["--flag value after"] = []string{c.name, "POS", "--" + f.Name}
				forms["--flag value before"] = []string{c.name, "--" + f.Name, "POS"}
				forms["-flag value after"] = []string{c.name, "POS", "-" + f.Name}
			}
			if f.Shorthand != "" {
				forms["-s after"] = []string{c.name, "POS", "-" + f.Shorthand}
				if f.Value.Type() != "bool" {
					forms["-s after"] = append(forms["-s after"], val)
				}
			}
			for form, args := range forms {
				root := newRoot(e)
				cmd, rest, err := root.Find(compatArgs(root, args))
				if err != nil || cmd.Name() != c.name {
					t.Fatalf("%s: find %v: %v", c.name, args, err)
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("reelfs %s (%s): %v", strings.Join(args, " "), form, err)
					continue
				}
				got := cmd.Flags().Lookup(f.Name)
				if !got.Changed || (f.Value.Type() != "bool" && got.Value.String() != f.Value.String() && got.Value.String() != val) {
					t.Errorf("reelfs %s (%s): flag %s not set (%q)", strings.Join(args, " "), form, f.Name, got.Value.String())
				}
				if pos := cmd.Flags().Args(); !slices.Equal(pos, []string{"POS"}) {
					t.Errorf("reelfs %s (%s): positionals %q, want [POS]", strings.Join(args, " "), form, pos)
				}
				n++
			}
		})
	}
	if n < 200 {
		t.Fatalf("only %d command lines checked", n)
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			out, errOut, code := runWith("", nil, c.name, "POS", h)
			if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "reelfs "+c.name) {
				t.Errorf("reelfs %s POS %s: exit %d, stdout %q, stderr %q", c.name, h, code, out, errOut)
			}
		}
	}
	if out, _, code := runWith("", nil, "--help"); code != 0 || !strings.Contains(out, "completion") {
		t.Errorf("reelfs --help: exit %d:\n%s", code, out)
	}
	if _, _, code := runWith("", nil); code != 2 {
		t.Errorf("reelfs alone: exit %d, want 2", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"ls", "--nosuchflag"},
		{"put", "onlyone"},
		{"status", "--timeout"},
		{"mount"},
	} {
		_, errOut, code := runWith("127.0.0.1:1", nil, args...)
		if code != 2 || errOut == "" || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("reelfs %v: exit %d, stderr %q; want 2 and a one-line message", args, code, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runWith("", nil, "version")
	if code != 0 || !strings.HasPrefix(out, "reelfs ") || !strings.Contains(out, runtime.Version()) {
		t.Fatalf("reelfs version: exit %d: %q", code, out)
	}
	alt, _, code := runWith("", nil, "--version")
	if code != 0 || alt != out {
		t.Fatalf("reelfs --version: exit %d: %q, want %q", code, alt, out)
	}
	js, _, code := runWith("", nil, "version", "--json")
	var v buildVersion
	if err := json.Unmarshal([]byte(js), &v); err != nil || code != 0 {
		t.Fatalf("version --json: exit %d, %v: %s", code, err, js)
	}
	if v.Go != runtime.Version() || v.Version == "" || v.Module != "github.com/reelfs/reelfs" {
		t.Fatalf("version --json: %+v", v)
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_reelfs", "zsh": "#compdef reelfs"} {
		out, errOut, code := runWith("", nil, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes without %q", shell, code, errOut, len(out), marker)
		}
	}
	// the completion script asks the binary for candidates: commands,
	// then a command's flags
	out, _, _ := runWith("", nil, "__complete", "st")
	if !strings.Contains(out, "stat") || !strings.Contains(out, "status") {
		t.Errorf("__complete st: %q", out)
	}
	out, _, _ = runWith("", nil, "__complete", "status", "--")
	if !strings.Contains(out, "--json") || !strings.Contains(out, "--meta") {
		t.Errorf("__complete status --: %q", out)
	}
}

// TestClientCommandsFlagsAfter runs the client commands against a cluster
// with their flags after the positional arguments, and reads --json back.
func TestClientCommandsFlagsAfter(t *testing.T) {
	tc := newTestCluster(t, 2)
	dir := t.TempDir()
	local := filepath.Join(dir, "clip.mp4")
	data := []byte(strings.Repeat("reelfs ", 10000))
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	m := tc.meta
	// REELFS_META is not set: --meta after the arguments must be read
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runWith("127.0.0.1:1", nil, args...)
		if code != 0 {
			t.Fatalf("reelfs %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	run("mkdir", "/films/new", "-p", "--meta", m)
	run("put", local, "/films/new/", "--meta="+m, "--progress=false")
	run("put", local, "/films/b.mp4", "-meta", m)
	if got := run("cat", "/films/new/clip.mp4", "--meta", m); got != string(data) {
		t.Fatalf("cat: %d bytes, want %d", len(got), len(data))
	}
	got := filepath.Join(dir, "got.mp4")
	run("get", "/films/b.mp4", got, "--meta", m)
	if b, err := os.ReadFile(got); err != nil || string(b) != string(data) {
		t.Fatalf("get: %v, %d bytes", err, len(b))
	}
	run("mv", "/films/b.mp4", "/films/c.mp4", "--meta", m)

	// shell completion lists remote paths for remote arguments (the word
	// being completed is the last)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "ls", "--meta", m, "/fi"}, "/films/\n:6\n"},
		{[]string{"__complete", "cat", "--meta", m, "/films/"}, "/films/c.mp4\n/films/new/\n:6\n"},
		{[]string{"__complete", "get", "--meta=" + m, "films/n"}, "films/new/\n:6\n"},
		{[]string{"__complete", "put", "local", "--meta", m, "/films/c"}, "/films/c.mp4\n:4\n"},
		{[]string{"__complete", "put", "loc"}, ":0\n"}, // a local file: the shell completes it
	} {
		out, _, _ := runWith("127.0.0.1:1", nil, tt.args...)
		if !strings.HasPrefix(out, tt.want) {
			t.Errorf("reelfs %s: %q, want %q", strings.Join(tt.args, " "), out, tt.want)
		}
	}

	var entries []entryJSON
	if err := json.Unmarshal([]byte(run("ls", "/films", "--json", "--meta", m)), &entries); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/films/new": "dir", "/films/c.mp4": "file"}
	if len(entries) != len(want) {
		t.Fatalf("ls --json: %+v", entries)
	}
	for _, e := range entries {
		if want[e.Path] != e.Type || e.Name != filepath.Base(e.Path) || e.Ino == 0 {
			t.Errorf("ls --json entry %+v, want type %q", e, want[e.Path])
		}
		if e.Type == "file" && (e.Size != uint64(len(data)) || e.Mode != "-rw-r--r--" || e.Perm != 0o644) {
			t.Errorf("ls --json file %+v", e)
		}
		if time.Since(e.Mtime) > time.Hour || time.Since(e.Mtime) < 0 {
			t.Errorf("ls --json mtime %v", e.Mtime)
		}
	}
	if out := run("ls", "/films", "-l", "--meta", m); !strings.Contains(out, "-rw-r--r--") || !strings.Contains(out, "c.mp4") {
		t.Errorf("ls -l: %q", out)
	}
	var st []entryJSON
	if err := json.Unmarshal([]byte(run("stat", "/films/c.mp4", "/films", "--json", "--meta", m)), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Path != "/films/c.mp4" || st[0].Size != uint64(len(data)) || st[1].Type != "dir" || st[1].Mode != "drwxr-xr-x" {
		t.Fatalf("stat --json: %+v", st)
	}
	run("rm", "/films", "-r", "--meta", m)
	if _, errOut, code := runWith(m, nil, "stat", "/films"); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("stat after rm -r: exit %d: %s", code, errOut)
	}
}

// TestStatusExitCodes: 0 for a healthy cluster, 1 with a member down, 2
// with the metaserver gone; --json says the same.
func TestStatusExitCodes(t *testing.T) {
	tc := newTestCluster(t, 2)
	status := func() (statusJSON, string, int) {
		out, errOut, code := tc.run("status", "--json", "--timeout", "500ms")
		var s statusJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("status --json: exit %d: %v: %q %s", code, err, out, errOut)
		}
		return s, errOut, code
	}
	s, _, code := status()
	if code != statusHealthy || s.Health.State != "healthy" || len(s.Groups) != 1 || len(s.Groups[0].Members) != 2 || s.FS == nil {
		t.Fatalf("healthy cluster: exit %d, %+v", code, s)
	}
	if out, _, code := tc.run("status"); code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("status: exit %d: %s", code, out)
	}

	tc.chunks[1]() // one member down: degraded once the tracker notices
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, errOut, code := status()
		if code == statusDegraded {
			if s.Health.State != "degraded" || !strings.Contains(strings.Join(s.Health.Problems, "\n"), "cs2") ||
				!strings.Contains(errOut, "degraded") {
				t.Fatalf("degraded: %+v, stderr %q", s.Health, errOut)
			}
			break
		}
		if code != statusHealthy || time.Now().After(deadline) {
			t.Fatalf("a member down: exit %d, %+v", code, s.Health)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tc.stopMeta()
	start := time.Now()
	s, errOut, code := status()
	if code != statusUnreachable || s.Health.State != "unreachable" || s.Error == "" || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("metaserver down: exit %d, %+v, stderr %q", code, s, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("unreachable took %v with --timeout 500ms", d)
	}
}

func TestJudge(t *testing.T) {
	ok := func(id string) wire.Member { return wire.Member{ID: id, Healthy: true, InSync: true} }
	down, behind, full := ok("b"), ok("b"), ok("b")
	down.Healthy = false
	behind.InSync = false
	full.Full = true
	for _, tt := range []struct {
		name   string
		groups []wire.Group
		state  string
		want   string // in a problem
	}{
		{"no group", nil, "degraded", "no chunkserver group"},
		{"all well", []wire.Group{{ID: 1, MinCopies: 2, Members: []wire.Member{ok("a"), ok("b")}}}, "healthy", ""},
		{"single copy", []wire.Group{{ID: 1, MinCopies: 1, Members: []wire.Member{ok("a")}}}, "healthy", ""},
		{"member down", []wire.Group{{ID: 1, MinCopies: 1, Members: []wire.Member{ok("a"), down}}}, "degraded", "b () is down"},
		{"catching up", []wire.Group{{ID: 1, MinCopies: 1, Members: []wire.Member{ok("a"), behind}}}, "degraded", "not in the in-sync set"},
		{"full", []wire.Group{{ID: 1, MinCopies: 1, Members: []wire.Member{ok("a"), full}}}, "degraded", "full"},
		{"below min-copies", []wire.Group{{ID: 1, MinCopies: 2, Members: []wire.Member{ok("a")}}}, "degraded", "takes no writes"},
		{"empty group", []wire.Group{{ID: 2}}, "degraded", "no members"},
		{"one bad group of two", []wire.Group{
			{ID: 1, MinCopies: 1, Members: []wire.Member{ok("a")}},
			{ID: 2, MinCopies: 1, Members: []wire.Member{ok("c"), down}},
		}, "degraded", "group 2"},
	} {
		h := judge(tt.groups)
		if h.State != tt.state || !strings.Contains(strings.Join(h.Problems, "\n"), tt.want) {
			t.Errorf("%s: %+v, want %s with %q", tt.name, h, tt.state, tt.want)
		}
		if (h.State == "healthy") != (len(h.Problems) == 0) {
			t.Errorf("%s: state %s with problems %q", tt.name, h.State, h.Problems)
		}
	}
}
