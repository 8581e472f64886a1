package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Service describes one daemon instance for the local agent's catalog.
type Service struct {
	// Name is the service name clients look up: reelfs-meta, reelfs-chunk,
	// reelfs-httpd, reelfs-live.
	Name string
	// ID is unique among the agent's services, e.g. reelfs-chunk-10.0.0.5:7001.
	ID string
	// Address and Port are where the daemon serves; an empty Address
	// stands for the agent's node address.
	Address string
	Port    int
	// Tags and Meta travel to watchers; a chunkserver tags its group.
	Tags []string
	Meta map[string]string
	// CheckURL is the HTTP URL the agent fetches every
	// Config.CheckInterval: a 2xx answer passes, 429 warns, anything else
	// (including no answer within Config.CheckTimeout) is critical.
	CheckURL string
}

// CheckID is the id of the service's health check, which a Lock ties its
// session to.
func (s Service) CheckID() string { return "service:" + s.ID }

func (s Service) validate() error {
	switch {
	case s.Name == "":
		return errors.New("service name is empty")
	case s.ID == "":
		return fmt.Errorf("service %s: ID is empty", s.Name)
	case s.Port <= 0 || s.Port > 65535:
		return fmt.Errorf("service %s: port %d out of range", s.ID, s.Port)
	case s.CheckURL == "":
		return fmt.Errorf("service %s: CheckURL is empty: every reelfs service has a real health check", s.ID)
	}
	return nil
}

// Registration keeps one service registered with the local agent from Run
// until Run's context ends, then deregisters it.
type Registration struct {
	c   *Client
	svc Service

	once  sync.Once     // closes ready
	ready chan struct{} // closed after the first successful registration
}

// NewRegistration checks svc and returns a Registration for it; nothing is
// sent to the agent before Run.
func (c *Client) NewRegistration(svc Service) (*Registration, error) {
	if err := svc.validate(); err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	svc.Tags = append([]string(nil), svc.Tags...)
	meta := make(map[string]string, len(svc.Meta))
	for k, v := range svc.Meta {
		meta[k] = v
	}
	svc.Meta = meta
	return &Registration{c: c, svc: svc, ready: make(chan struct{})}, nil
}

// CheckID is the id of the service's health check (see Service.CheckID).
func (r *Registration) CheckID() string { return r.svc.CheckID() }

// Registered is closed once the agent first accepted the registration.
func (r *Registration) Registered() <-chan struct{} { return r.ready }

// Run registers the service and then, every Config.SyncInterval, asks the
// agent whether it still has it; an agent that restarted without its state
// (or deregistered the service after its check stayed critical) gets it
// again. Errors are logged and retried with bounded backoff: a Consul
// outage never stops the daemon. When ctx ends, Run deregisters the
// service and returns the deregistration's error, if any.
func (r *Registration) Run(ctx context.Context) error {
	log := r.c.log.With("service", r.svc.Name, "id", r.svc.ID)
	registered := false
	failures := 0
	for {
		var err error
		if !registered {
			if err = r.register(ctx); err == nil {
				registered = true
				r.once.Do(func() { close(r.ready) })
				log.Info("consul: registered service", "check", r.svc.CheckURL)
			}
		} else {
			var present bool
			if present, err = r.present(ctx); err == nil && !present {
				log.Warn("consul: agent no longer has the service; registering it again")
				registered = false
				continue
			}
		}
		delay := r.c.cfg.SyncInterval
		if err != nil && ctx.Err() == nil {
			if failures == 0 {
				log.Warn("consul: registration", "err", err)
			} else {
				log.Debug("consul: registration", "err", err, "failures", failures+1)
			}
			delay = jitter(backoff(failures, r.c.cfg.RetryMin, r.c.cfg.RetryMax))
			failures++
		} else if err == nil {
			if failures > 0 {
				log.Info("consul: agent reachable again", "failures", failures)
			}
			failures = 0
		}
		if sleep(ctx, delay) != nil {
			return r.deregister(context.WithoutCancel(ctx))
		}
	}
}

func (r *Registration) register(ctx context.Context) error {
	cfg := r.c.cfg
	reg := &api.AgentServiceRegistration{
		ID:      r.svc.ID,
		Name:    r.svc.Name,
		Address: r.svc.Address,
		Port:    r.svc.Port,
		Tags:    r.svc.Tags,
		Meta:    r.svc.Meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        r.svc.CheckID(),
			Name:                           r.svc.Name + " health",
			HTTP:                           r.svc.CheckURL,
			Method:                         "GET",
			Interval:                       cfg.CheckInterval.String(),
			Timeout:                        cfg.CheckTimeout.String(),
			DeregisterCriticalServiceAfter: cfg.DeregisterCriticalAfter.String(),
		},
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	err := r.c.api.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul: register %s: %w", r.svc.ID, err)
	}
	return nil
}

// present asks the agent whether it has the service.
func (r *Registration) present(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.c.cfg.RequestTimeout)
	defer cancel()
	_, _, err := r.c.api.Agent().Service(r.svc.ID, (&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	switch {
	case errors.As(err, &se) && se.Code == 404:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("consul: look up service %s: %w", r.svc.ID, err)
	}
	return true, nil
}

func (r *Registration) deregister(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.c.cfg.RequestTimeout)
	defer cancel()
	err := r.c.api.Agent().ServiceDeregisterOpts(r.svc.ID, (&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return nil // never registered, or the agent lost it already
	}
	if err != nil {
		return fmt.Errorf("consul: deregister %s: %w", r.svc.ID, err)
	}
	r.c.log.Info("consul: deregistered service", "service", r.svc.Name, "id", r.svc.ID)
	return nil
}

// sleep waits d or until ctx ends, whichever is first, and returns ctx.Err().
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
