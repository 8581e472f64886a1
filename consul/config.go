package consul

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
)

// Config holds everything a Client needs. Fill it from DefaultConfig and
// flags; New validates it. The package reads no environment itself: cmd/
// turns $CONSUL_HTTP_ADDR into Address (Consul's own convention).
type Config struct {
	// Address of the local Consul agent's HTTP API: host:port, or a URL
	// with an http:// or https:// scheme.
	Address string
	// Token is the ACL token sent with every request; empty sends none
	// (the api library then falls back to $CONSUL_HTTP_TOKEN).
	Token string
	// Logger receives registration, watch and leadership events.
	Logger *slog.Logger

	// CheckInterval is how often the agent runs a service's HTTP health
	// check, and CheckTimeout how long one attempt may take. A dead daemon
	// fails its check within about CheckInterval+CheckTimeout, which bounds
	// how fast a leader's session is invalidated.
	CheckInterval time.Duration
	CheckTimeout  time.Duration
	// DeregisterCriticalAfter removes a service whose check stayed critical
	// this long (a daemon that died without deregistering). Consul's floor
	// is one minute.
	DeregisterCriticalAfter time.Duration
	// SyncInterval is how often a Registration asks the agent whether it
	// still knows the service, and registers it again if not (an agent
	// restarted without its state).
	SyncInterval time.Duration

	// SessionTTL is the TTL of a leader session, renewed while the lock is
	// held. Consul accepts 10s..24h and may reap an expired session up to
	// twice the TTL late; the fast path to failover is the session's health
	// checks, the TTL only a backstop.
	SessionTTL time.Duration
	// LockDelay is how long Consul refuses the leader key to anyone after a
	// session holding it is invalidated. Zero is not allowed: the api then
	// omits the field and Consul applies its default of 15s.
	LockDelay time.Duration
	// LostAfter is how long a lock holder that cannot reach Consul keeps
	// believing it leads. It must be shorter than SessionTTL, so the holder
	// steps down before its session can expire. It is not a fence: epochs
	// are.
	LostAfter time.Duration

	// WaitTime bounds one blocking query; Consul adds up to WaitTime/16 of
	// jitter.
	WaitTime time.Duration
	// RequestTimeout bounds one non-blocking request.
	RequestTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// after an error.
	RetryMin time.Duration
	RetryMax time.Duration
}

// DefaultConfig returns the settings reelfs runs with: one-second health
// checks, a 10 s session TTL and a 1 s lock-delay, so a killed leader is
// replaced within a few seconds.
func DefaultConfig() Config {
	return Config{
		Address:                 "127.0.0.1:8500",
		Logger:                  slog.Default(),
		CheckInterval:           time.Second,
		CheckTimeout:            time.Second,
		DeregisterCriticalAfter: time.Minute,
		SyncInterval:            2 * time.Second,
		SessionTTL:              10 * time.Second,
		LockDelay:               time.Second,
		LostAfter:               5 * time.Second,
		WaitTime:                30 * time.Second,
		RequestTimeout:          5 * time.Second,
		RetryMin:                100 * time.Millisecond,
		RetryMax:                3 * time.Second,
	}
}

// Validate checks each field and the relations between them.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Address == "":
		return bad("Address is empty")
	case c.Logger == nil:
		return bad("Logger is nil")
	case c.CheckInterval < 100*time.Millisecond:
		return bad("CheckInterval %v is below 100ms", c.CheckInterval)
	case c.CheckTimeout <= 0 || c.CheckTimeout > c.CheckInterval:
		return bad("CheckTimeout %v must be positive and at most CheckInterval %v", c.CheckTimeout, c.CheckInterval)
	case c.DeregisterCriticalAfter < time.Minute:
		return bad("DeregisterCriticalAfter %v is below Consul's floor of 1m", c.DeregisterCriticalAfter)
	case c.SyncInterval <= 0:
		return bad("SyncInterval %v must be positive", c.SyncInterval)
	case c.SessionTTL < 10*time.Second || c.SessionTTL > 24*time.Hour:
		return bad("SessionTTL %v is outside Consul's 10s..24h", c.SessionTTL)
	case c.LockDelay <= 0 || c.LockDelay > time.Minute:
		return bad("LockDelay %v must be in (0, 60s]: zero means Consul's 15s default", c.LockDelay)
	case c.LostAfter <= 0 || c.LostAfter >= c.SessionTTL:
		return bad("LostAfter %v must be positive and below SessionTTL %v", c.LostAfter, c.SessionTTL)
	case c.WaitTime < time.Second || c.WaitTime > 10*time.Minute:
		return bad("WaitTime %v is outside 1s..10m", c.WaitTime)
	case c.RequestTimeout <= 0:
		return bad("RequestTimeout %v must be positive", c.RequestTimeout)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return bad("RetryMin %v and RetryMax %v must satisfy 0 < RetryMin <= RetryMax", c.RetryMin, c.RetryMax)
	}
	return nil
}

// Client talks to one Consul agent. It is safe for concurrent use; the
// goroutines of its Registrations, watches and Locks belong to the calls
// that start them.
type Client struct {
	cfg Config
	api *api.Client
	log *slog.Logger
}

// New validates cfg and returns a Client. It does not contact the agent.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := api.NewClient(&api.Config{Address: cfg.Address, Token: cfg.Token})
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", cfg.Address, err)
	}
	return &Client{cfg: cfg, api: c, log: cfg.Logger.With("component", "consul")}, nil
}

// Ping asks the agent who the cluster leader is; it fails while the agent
// is unreachable or its cluster has no leader.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var leader string
	_, err := c.api.Raw().Query("/v1/status/leader", &leader, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: ping %s: %w", c.cfg.Address, err)
	}
	if leader == "" {
		return fmt.Errorf("consul: ping %s: cluster has no leader", c.cfg.Address)
	}
	return nil
}
