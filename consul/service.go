package consul

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// HTTPService describes a daemon that serves HTTP on addr (host:port, the
// address it advertises or listens on) with an unauthenticated health
// endpoint at healthPath. Its ID is name-host:port, unique per address.
// A host that is empty or unspecified (0.0.0.0, ::) registers no address,
// so the catalog shows the agent's node address, and the agent checks the
// daemon on 127.0.0.1: Consul runs one agent per machine, beside its
// daemons.
func HTTPService(name, addr, healthPath string) (Service, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return Service{}, fmt.Errorf("consul: service %s: address %q: %w", name, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return Service{}, fmt.Errorf("consul: service %s: address %q: bad port", name, addr)
	}
	checkHost := host
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, checkHost = "", "127.0.0.1"
	}
	return Service{
		Name:     name,
		ID:       name + "-" + net.JoinHostPort(checkHost, p),
		Address:  host,
		Port:     port,
		CheckURL: "http://" + net.JoinHostPort(checkHost, p) + healthPath,
	}, nil
}

// Register keeps svc registered with the local agent until ctx ends, then
// deregisters it, as Registration.Run does; it is meant to be one
// goroutine of a daemon's Run. Only an invalid svc is an error: Consul
// being down never stops a daemon, and a deregistration that fails at
// shutdown is logged, not returned (the agent drops the service on its
// own once its check has been critical for Config.DeregisterCriticalAfter).
func (c *Client) Register(ctx context.Context, svc Service) error {
	r, err := c.NewRegistration(svc)
	if err != nil {
		return err
	}
	if err := r.Run(ctx); err != nil {
		c.log.Warn("consul: deregistration at shutdown failed; the agent will drop the service once its check stays critical",
			"service", svc.Name, "id", svc.ID, "err", err)
	}
	return nil
}
