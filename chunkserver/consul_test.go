package chunkserver

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/consul/consultest"
	"github.com/reelfs/reelfs/internal/wire"
)

// TestHealthEndpoint: /v1/health needs no secret and says one word.
func TestHealthEndpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.Secret = "s3cret"
	ts := startServer(t, cfg)
	ts.secret = ""
	resp := ts.do(t, "GET", wire.PathHealth, nil)
	wantStatus(t, resp, 200, "")
	if string(resp.Body()) != "ok\n" {
		t.Errorf("body %q, want ok", resp.Body())
	}
	wantStatus(t, ts.do(t, "PUT", wire.PathHealth, []byte("x")), 405, "")
}

// TestConsulRegistration runs a chunkserver against a real agent: it
// registers reelfs-chunk with its group tag and member id, its check
// passes, and it is gone from the catalog when Run returns.
func TestConsulRegistration(t *testing.T) {
	agent := consultest.Start(t)
	ccfg := consul.DefaultConfig()
	ccfg.Address = agent.Addr
	ccfg.Logger = slog.New(slog.DiscardHandler)
	cc, err := consul.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Group = 7
	cfg.Consul = cc
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(15 * time.Second)
	var in []consul.Instance
	for time.Now().Before(deadline) {
		if in, err = cc.Healthy(context.Background(), consul.ServiceChunk, consul.GroupTag(7)); err == nil && len(in) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(in) != 1 {
		t.Fatalf("healthy reelfs-chunk instances of group 7: %v (err %v)", in, err)
	}
	if got := in[0]; got.Meta[consul.MetaMember] != s.ID() || got.HostPort() != s.Addr() || !slices.Contains(got.Tags, "group-7") {
		t.Errorf("registered %+v, want member %s at %s tagged group-7", got, s.ID(), s.Addr())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil
	services, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 0 {
		t.Errorf("services after Run returned: %v, want none", services)
	}
}
