package consul

import (
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{4, 1600 * time.Millisecond},
		{5, 3 * time.Second}, // 3.2 s capped
		{60, 3 * time.Second},
		{1 << 30, 3 * time.Second}, // no overflow, no long loop
	} {
		if got := backoff(tc.attempt, lo, hi); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if got := jitter(time.Second); got < 500*time.Millisecond || got >= time.Second {
			t.Fatalf("jitter(1s) = %v, want in [500ms, 1s)", got)
		}
	}
	if got := jitter(1); got != 1 {
		t.Errorf("jitter(1ns) = %v", got)
	}
}

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prev, got uint64
		want      uint64
	}{
		{"first read", 0, 42, 42},
		{"no change, wait timed out", 42, 42, 42},
		{"moved forward", 42, 57, 57},
		{"went backwards: restart from 0", 57, 42, 0},
		{"went backwards to 0", 57, 0, 0},
		{"zero after a reset is never waited on", 0, 0, 1},
		{"one is kept", 1, 1, 1},
	} {
		if got := nextIndex(tc.prev, tc.got); got != tc.want {
			t.Errorf("%s: nextIndex(%d, %d) = %d, want %d", tc.name, tc.prev, tc.got, got, tc.want)
		}
	}
}

func TestLockLostReason(t *testing.T) {
	now := time.Unix(1000, 0)
	const lostAfter = 5 * time.Second
	fresh := now.Add(-time.Second)
	for _, tc := range []struct {
		name string
		view lockView
		lost bool
	}{
		{"held, recent contact", lockView{keyFound: true, keySession: "s1", lastContact: fresh}, false},
		{"held, contact just inside the bound", lockView{keyFound: true, keySession: "s1", lastContact: now.Add(-lostAfter + time.Millisecond)}, false},
		{"held, contact exactly at the bound", lockView{keyFound: true, keySession: "s1", lastContact: now.Add(-lostAfter)}, true},
		{"Consul silent too long", lockView{keyFound: true, keySession: "s1", lastContact: now.Add(-time.Minute)}, true},
		{"key released (session invalidated, behavior release)", lockView{keyFound: true, keySession: "", lastContact: fresh}, true},
		{"key deleted (behavior delete, or by hand)", lockView{keyFound: false, lastContact: fresh}, true},
		{"key held by another session", lockView{keyFound: true, keySession: "s2", lastContact: fresh}, true},
		{"renewal found the session gone", lockView{keyFound: true, keySession: "s1", sessionGone: true, lastContact: fresh}, true},
	} {
		reason := lockLostReason("s1", tc.view, now, lostAfter)
		if (reason != "") != tc.lost {
			t.Errorf("%s: lockLostReason = %q, want lost=%v", tc.name, reason, tc.lost)
		}
	}
}

func TestSameInstances(t *testing.T) {
	a := Instance{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 1, Tags: []string{"g1"}, Meta: map[string]string{"k": "v"}}
	b := Instance{ID: "b", Node: "n1", Address: "10.0.0.2", Port: 2}
	moved := a
	moved.Port = 3
	retagged := a
	retagged.Tags = []string{"g2"}
	remeta := a
	remeta.Meta = map[string]string{"k": "w"}
	for _, tc := range []struct {
		name string
		x, y []Instance
		want bool
	}{
		{"both empty", nil, []Instance{}, true},
		{"same order", []Instance{a, b}, []Instance{a, b}, true},
		{"other order", []Instance{a, b}, []Instance{b, a}, true},
		{"one came", []Instance{a}, []Instance{a, b}, false},
		{"one went", []Instance{a, b}, []Instance{b}, false},
		{"port changed", []Instance{a}, []Instance{moved}, false},
		{"tags changed", []Instance{a}, []Instance{retagged}, false},
		{"meta changed", []Instance{a}, []Instance{remeta}, false},
	} {
		if got := sameInstances(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: sameInstances = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"no address", func(c *Config) { c.Address = "" }},
		{"no logger", func(c *Config) { c.Logger = nil }},
		{"check timeout past interval", func(c *Config) { c.CheckTimeout = 2 * c.CheckInterval }},
		{"deregister below Consul's floor", func(c *Config) { c.DeregisterCriticalAfter = 30 * time.Second }},
		{"session TTL below 10s", func(c *Config) { c.SessionTTL = 5 * time.Second }},
		{"zero lock-delay means Consul's 15s", func(c *Config) { c.LockDelay = 0 }},
		{"lost-after not below the TTL", func(c *Config) { c.LostAfter = c.SessionTTL }},
		{"retry bounds inverted", func(c *Config) { c.RetryMax = c.RetryMin / 2 }},
		{"wait time past Consul's 10m", func(c *Config) { c.WaitTime = time.Hour }},
	} {
		cfg := DefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tc.name, err)
		}
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", tc.name, err)
		}
	}
}

func TestServiceValidate(t *testing.T) {
	ok := Service{Name: "reelfs-chunk", ID: "reelfs-chunk-1", Port: 7001, CheckURL: "http://127.0.0.1:7001/v1/health"}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid service: %v", err)
	}
	if got, want := ok.CheckID(), "service:reelfs-chunk-1"; got != want {
		t.Errorf("CheckID = %q, want %q", got, want)
	}
	for _, bad := range []func(*Service){
		func(s *Service) { s.Name = "" },
		func(s *Service) { s.ID = "" },
		func(s *Service) { s.Port = 0 },
		func(s *Service) { s.Port = 70000 },
		func(s *Service) { s.CheckURL = "" },
	} {
		s := ok
		bad(&s)
		if err := s.validate(); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", s)
		}
	}
}

func TestHTTPService(t *testing.T) {
	for _, tc := range []struct {
		name, addr              string
		wantID, wantAddr, check string
		wantPort                int
		bad                     bool
	}{
		{name: "reelfs-chunk", addr: "10.0.0.5:7001", wantID: "reelfs-chunk-10.0.0.5:7001", wantAddr: "10.0.0.5",
			wantPort: 7001, check: "http://10.0.0.5:7001/v1/health"},
		{name: "reelfs-meta", addr: ":9400", wantID: "reelfs-meta-127.0.0.1:9400", wantAddr: "",
			wantPort: 9400, check: "http://127.0.0.1:9400/v1/health"},
		{name: "reelfs-meta", addr: "0.0.0.0:9400", wantID: "reelfs-meta-127.0.0.1:9400", wantAddr: "",
			wantPort: 9400, check: "http://127.0.0.1:9400/v1/health"},
		{name: "reelfs-httpd", addr: "[::]:9480", wantID: "reelfs-httpd-127.0.0.1:9480", wantAddr: "",
			wantPort: 9480, check: "http://127.0.0.1:9480/v1/health"},
		{name: "reelfs-httpd", addr: "[::1]:9480", wantID: "reelfs-httpd-[::1]:9480", wantAddr: "::1",
			wantPort: 9480, check: "http://[::1]:9480/v1/health"},
		{name: "reelfs-chunk", addr: "host.example:7001", wantID: "reelfs-chunk-host.example:7001", wantAddr: "host.example",
			wantPort: 7001, check: "http://host.example:7001/v1/health"},
		{name: "x", addr: "10.0.0.5", bad: true},
		{name: "x", addr: "10.0.0.5:0", bad: true},
		{name: "x", addr: "10.0.0.5:http", bad: true},
	} {
		svc, err := HTTPService(tc.name, tc.addr, "/v1/health")
		if tc.bad {
			if err == nil {
				t.Errorf("HTTPService(%q) = %+v, want an error", tc.addr, svc)
			}
			continue
		}
		if err != nil {
			t.Errorf("HTTPService(%q): %v", tc.addr, err)
			continue
		}
		if svc.Name != tc.name || svc.ID != tc.wantID || svc.Address != tc.wantAddr || svc.Port != tc.wantPort || svc.CheckURL != tc.check {
			t.Errorf("HTTPService(%q) = %+v, want id %s address %q port %d check %s",
				tc.addr, svc, tc.wantID, tc.wantAddr, tc.wantPort, tc.check)
		}
		if err := svc.validate(); err != nil {
			t.Errorf("HTTPService(%q) is invalid: %v", tc.addr, err)
		}
	}
}
