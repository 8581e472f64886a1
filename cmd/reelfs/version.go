package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// buildVersion is what ran: the module version (a tag when built by
// `go install ...@vX`, "(devel)" from a checkout), the VCS commit the
// binary was built from (when the build stamped it: `make build` does) and
// the Go toolchain.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Time     string `json:"commit_time,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func readVersion() buildVersion {
	v := buildVersion{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version, v.Go = bi.Main.Path, bi.Main.Version, bi.GoVersion
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.Time = s.Value
		}
	}
	return v
}

// versionLine is the one-line form: reelfs --version prints it.
func versionLine() string {
	v := readVersion()
	commit := "unknown"
	if v.Commit != "" {
		commit = v.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if v.Modified {
			commit += "-dirty"
		}
	}
	return fmt.Sprintf("%s commit %s %s %s", v.Version, commit, v.Go, v.Platform)
}

func versionCommand() command {
	return command{
		name: "version", usage: "", summary: "print the module version, the commit and the Go version this binary was built from",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("version takes no arguments")
				}
				if *asJSON {
					return writeJSON(e.stdout, readVersion())
				}
				fmt.Fprintln(e.stdout, "reelfs", versionLine())
				return nil
			}
		},
	}
}

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
