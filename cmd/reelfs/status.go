package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// Exit statuses of reelfs status, for scripts and health probes.
const (
	statusHealthy     = 0 // every group has all its members up and in sync
	statusDegraded    = 1 // the metaserver answers, but something is wrong (see health)
	statusUnreachable = 2 // no answer from the metaserver (or it refused us)
)

// health is the verdict of reelfs status.
type health struct {
	State    string   `json:"state"`              // healthy, degraded or unreachable
	Problems []string `json:"problems,omitempty"` // why it is not healthy
}

// judge tells whether a cluster is healthy from its groups: a cluster
// with no group, a member down or out of the in-sync set, or a group that
// cannot take writes (fewer writable in-sync members than min-copies) is
// degraded.
func judge(groups []wire.Group) health {
	var problems []string
	if len(groups) == 0 {
		problems = append(problems, "no chunkserver group has registered")
	}
	for _, g := range groups {
		if len(g.Members) == 0 {
			problems = append(problems, fmt.Sprintf("group %d has no members", g.ID))
		}
		writable := 0
		for _, m := range g.Members {
			switch {
			case !m.Healthy:
				problems = append(problems, fmt.Sprintf("group %d: %s (%s) is down", g.ID, m.ID, m.Addr))
			case !m.InSync:
				problems = append(problems, fmt.Sprintf("group %d: %s (%s) is %s, not in the in-sync set", g.ID, m.ID, m.Addr, memberState(m)))
			case m.Full:
				problems = append(problems, fmt.Sprintf("group %d: %s (%s) is full", g.ID, m.ID, m.Addr))
			default:
				writable++
			}
		}
		if len(g.Members) > 0 && writable < max(g.MinCopies, 1) {
			problems = append(problems, fmt.Sprintf("group %d takes no writes: %d writable in-sync members, min-copies %d", g.ID, writable, g.MinCopies))
		}
	}
	if len(problems) > 0 {
		return health{State: "degraded", Problems: problems}
	}
	return health{State: "healthy"}
}

// statusJSON is what reelfs status --json prints.
type statusJSON struct {
	Meta   string       `json:"meta"`
	Health health       `json:"health"`
	Error  string       `json:"error,omitempty"` // why the metaserver could not be asked
	FS     *wire.StatFS `json:"fs,omitempty"`
	Groups []wire.Group `json:"groups,omitempty"`
	// Metaservers is the leader's view of failover; absent when one
	// metaserver runs alone.
	Metaservers *wire.MetaHA `json:"metaservers,omitempty"`
}

// judgeMeta adds failover's problems: a known follower out of the in-sync
// set.
func judgeMeta(h health, m *wire.MetaHA) health {
	if m == nil {
		return h
	}
	for _, f := range m.Followers {
		if !f.InSync {
			h.Problems = append(h.Problems, fmt.Sprintf("metaserver %s (%s) is not in the in-sync set", f.ID, f.Addr))
		}
	}
	if len(h.Problems) > 0 {
		h.State = "degraded"
	}
	return h
}

func statusCommand() command {
	return command{
		name: "status", usage: "", summary: "show groups, chunkservers, capacity and health",
		long: "Exit status: 0 healthy (every group has all its members up and in sync),\n" +
			"1 degraded (no group, a member down, resyncing or full, or a group below its\n" +
			"min-copies), 2 unreachable (the metaserver did not answer within --timeout).",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			asJSON := fs.Bool("json", false, "print JSON: health, capacity and every group with its members")
			timeout := fs.Duration("timeout", 10*time.Second, "how long to retry an unanswering metaserver before reporting it unreachable")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("status takes no arguments")
				}
				o.retry = *timeout
				out := statusJSON{Meta: o.meta}
				err := o.with(e, func(c *client.Client) error {
					st, err := c.StatFS(ctx)
					if err != nil {
						return err
					}
					cl, err := c.Cluster(ctx)
					if err != nil {
						return err
					}
					groups := cl.Groups
					out.Metaservers = cl.Meta
					sort.Slice(groups, func(i, j int) bool { return groups[i].ID < groups[j].ID })
					out.FS, out.Groups = &st, groups
					return nil
				})
				if err != nil {
					out.Health = health{State: "unreachable"}
					out.Error = oneLine(describe(o.meta, err))
					if *asJSON {
						writeJSON(e.stdout, out)
					}
					return exitError{code: statusUnreachable, err: describe(o.meta, err)}
				}
				out.Health = judgeMeta(judge(out.Groups), out.Metaservers)
				if *asJSON {
					if err := writeJSON(e.stdout, out); err != nil {
						return err
					}
				} else if err := printStatus(e.stdout, out); err != nil {
					return err
				}
				if out.Health.State != "healthy" {
					return exitError{code: statusDegraded, err: fmt.Errorf("degraded: %s", strings.Join(out.Health.Problems, "; "))}
				}
				return nil
			}
		},
	}
}

func printStatus(w io.Writer, s statusJSON) error {
	fmt.Fprintf(w, "metaserver %s: %d inodes, capacity %s, free %s, %d healthy groups; %s\n\n",
		s.Meta, s.FS.Files, human(s.FS.Total), human(s.FS.Free), s.FS.Groups, s.Health.State)
	if m := s.Metaservers; m != nil {
		fmt.Fprintf(w, "leader %s epoch %d, node %s; op log at %d, %d held by every in-sync metaserver; in-sync set [%s]\n",
			m.Leader, m.Epoch, m.Node, m.LastSeq, m.Committed, strings.Join(m.ISR, ", "))
		for _, f := range m.Followers {
			state := "in sync"
			if !f.InSync {
				state = "NOT in sync"
			}
			fmt.Fprintf(w, "  follower %s at %s: %s, asks for %d, last fetch %v ago\n", f.ID, f.Addr, state, f.Next,
				time.Since(time.Unix(0, f.LastFetch)).Round(time.Millisecond))
		}
		fmt.Fprintln(w)
	}
	for _, g := range s.Groups {
		isr := strings.Join(g.ISR, ", ")
		if isr == "" {
			isr = "none"
		}
		fmt.Fprintf(w, "group %d: in-sync set [%s] (version %d), min-copies %d, %s\n",
			g.ID, isr, g.ISRVersion, g.MinCopies, groupState(g))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tCHUNKSERVER\tADDR\tHEALTH\tSTATE\tLAG\tCAPACITY\tFREE\tUSED\tBLOCKS\tLOAD\tSEQ\tSCRUB\tLAST SEEN")
	for _, g := range s.Groups {
		for _, m := range g.Members {
			health := "healthy"
			if !m.Healthy {
				health = "DOWN"
			}
			seen := "never"
			if m.LastSeen != 0 {
				seen = time.Since(time.Unix(0, m.LastSeen)).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", g.ID, m.ID, m.Addr, health,
				memberState(m), memberLag(g, m), human(m.Capacity), human(m.Free), human(m.Used), m.Blocks, m.Load, m.Seq,
				scrubState(m.Scrub), seen)
		}
	}
	return tw.Flush()
}
