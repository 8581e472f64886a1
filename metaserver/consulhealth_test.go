package metaserver

import (
	"errors"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestConsulHealthy(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := consulRules{Stale: 10 * time.Second, Grace: 8 * time.Second}
	passing := map[string]bool{"a": true}
	cases := []struct {
		name     string
		v        consulView
		id       string
		ok, used bool
	}{
		{"no Consul: heartbeats only", consulView{}, "b", true, false},
		{"Consul never answered: heartbeats only", consulView{on: true}, "b", true, false},
		{"passing member", consulView{on: true, heard: true, passing: passing}, "a", true, true},
		{"failing member leaves", consulView{on: true, heard: true, passing: passing}, "b", false, true},
		{"empty set: everyone out", consulView{on: true, heard: true, passing: map[string]bool{}}, "a", false, true},
		{"watch failing briefly: last set stays",
			consulView{on: true, heard: true, passing: passing, failingSince: now.Add(-9 * time.Second)}, "b", false, true},
		{"watch failing for Stale: heartbeats only",
			consulView{on: true, heard: true, passing: passing, failingSince: now.Add(-10 * time.Second)}, "b", true, false},
		{"just reconnected: grace, heartbeats only",
			consulView{on: true, heard: true, passing: map[string]bool{}, trustFrom: now.Add(time.Second)}, "a", true, false},
		{"grace over: the set counts",
			consulView{on: true, heard: true, passing: passing, trustFrom: now}, "b", false, true},
		{"grace over, member registered again and passing",
			consulView{on: true, heard: true, passing: passing, trustFrom: now.Add(-time.Second)}, "a", true, true},
	}
	for _, tc := range cases {
		ok, used := consulHealthy(tc.v, tc.id, now, r)
		if ok != tc.ok || used != tc.used {
			t.Errorf("%s: consulHealthy = %v, %v; want %v, %v", tc.name, ok, used, tc.ok, tc.used)
		}
	}
}

// TestTrackerConsul drives the tracker's Consul view through a check
// failure, an agent outage shorter and longer than Stale, and an agent
// restart that comes back empty.
func TestTrackerConsul(t *testing.T) {
	r := consulRules{Stale: 10 * time.Second, Grace: 8 * time.Second}
	tr := newTracker(6*time.Second, isrRules{LagTime: 10 * time.Second})
	tr.useConsul(r)
	now := time.Unix(1_000_000, 0)
	for _, id := range []string{"a", "b", "c"} {
		tr.heartbeat(wire.Member{ID: id, Addr: id + ":1", Group: 1, Healthy: true}, now)
	}
	healthy := func(at time.Time) string {
		s := ""
		for _, g := range tr.groups(at) {
			for _, m := range g.Members {
				if m.Healthy {
					s += m.ID
				}
			}
		}
		return s
	}
	beat := func(at time.Time) {
		for _, id := range []string{"a", "b", "c"} {
			tr.heartbeat(wire.Member{ID: id, Addr: id + ":1", Group: 1, Healthy: true}, at)
		}
	}
	step := func(name string, at time.Time, want string) {
		t.Helper()
		if got := healthy(at); got != want {
			t.Errorf("%s: healthy %q, want %q", name, got, want)
		}
	}
	step("before Consul answers", now, "abc")
	tr.consulStatus(nil, now)
	tr.consulSet(map[string]bool{"a": true, "b": true}, now)
	step("first answer: grace", now.Add(time.Second), "abc")
	now = now.Add(8 * time.Second)
	beat(now)
	step("grace over: c's check fails", now, "ab")
	tr.consulSet(map[string]bool{"a": true}, now)
	step("b's check fails", now, "a")

	errDown := errors.New("connection refused")
	now = now.Add(time.Second)
	beat(now)
	if tr.consulStatus(errDown, now) {
		t.Error("fell back at the first failure")
	}
	step("agent down briefly: last set stays", now.Add(5*time.Second), "a")
	beat(now.Add(5 * time.Second))
	if !tr.consulStatus(errDown, now.Add(10*time.Second)) {
		t.Error("no fall-back reported after Stale")
	}
	if tr.consulStatus(errDown, now.Add(11*time.Second)) {
		t.Error("fall-back reported twice")
	}
	beat(now.Add(10 * time.Second))
	step("agent down for Stale: heartbeats only", now.Add(10*time.Second), "abc")

	// The agent comes back empty (a restart loses registrations).
	now = now.Add(12 * time.Second)
	beat(now)
	tr.consulStatus(nil, now)
	tr.consulSet(map[string]bool{}, now)
	step("agent back empty: grace", now.Add(5*time.Second), "abc")
	tr.consulSet(map[string]bool{"a": true, "b": true}, now.Add(time.Second))
	step("two registered again: still grace", now.Add(time.Second), "abc")
	tr.consulSet(map[string]bool{"a": true, "b": true, "c": true}, now.Add(2*time.Second))
	step("everyone registered again", now.Add(2*time.Second), "abc")
	tr.consulSet(map[string]bool{"a": true, "b": true}, now.Add(3*time.Second))
	step("grace ended early: the set counts", now.Add(3*time.Second), "ab")
	beat(now.Add(8 * time.Second))
	step("heartbeats still count with Consul passing", now.Add(15*time.Second), "")
}

func TestGraceOver(t *testing.T) {
	for _, tc := range []struct {
		alive   []string
		passing map[string]bool
		want    bool
	}{
		{nil, nil, true},
		{[]string{"a"}, nil, false},
		{[]string{"a", "b"}, map[string]bool{"a": true}, false},
		{[]string{"a", "b"}, map[string]bool{"a": true, "b": true, "c": true}, true},
		{[]string{"a"}, map[string]bool{"a": true, "x": true}, true},
	} {
		if got := graceOver(tc.alive, tc.passing); got != tc.want {
			t.Errorf("graceOver(%v, %v) = %v, want %v", tc.alive, tc.passing, got, tc.want)
		}
	}
}
