// Package consul registers reelfs daemons in Consul, watches healthy
// instances, elects a leader with a Consul lock, and reads and writes
// coordination state in Consul KV with check-and-set.
//
// # Registration
//
// A daemon describes itself as a Service with an HTTP health check that
// the local agent runs every Config.CheckInterval (one second by default).
// Registration.Run registers it, then keeps asking the agent whether it
// still has the service: an agent restarted without its state, or one that
// dropped the service after its check stayed critical, gets it again
// without anyone's help (anti-entropy, with bounded backoff while the
// agent is down). When Run's context ends the service is deregistered.
// Daemons build their Service with HTTPService (ID from the address, the
// check on 127.0.0.1 when they listen on every address) under the names
// of names.go, and run Client.Register as one goroutine of their Run: it
// never fails a daemon because Consul is down.
//
// # Watches
//
// WatchHealthy and WatchLeader follow Consul's blocking queries: each query
// waits on the index the previous one returned, an index that goes
// backwards restarts from 0, an index of 0 is never waited on, and a loop
// never spins faster than Config.RetryMin. The callback runs only when the
// result changed, since a blocking query may return without a change.
// WatchHealthyStatus also reports each query's outcome, so a caller can
// tell how old its view may be (the metaserver's tracker stops trusting
// it after a while without an answer).
//
// # Leader lock
//
// The model is Patroni on Consul. A contender waits (by blocking query,
// holding no session) while the leader key is held. When the key is free,
// and LockOptions.Eligible agrees (a metaserver in the in-sync set), it
// creates a session and acquires the key with its address as the value:
//
//	waiting, no session --key free--> session created --acquired--> leader
//	    ^                                 |   refused: lock-delay,     |
//	    +------ key held by another ------+   retry soon               |
//	                                                                   v
//	    session invalidated, key released, deleted or taken,     lost channel
//	    Consul silent for LostAfter, or Release              --> closed, Err says why
//
// The session's health checks are the node's serfHealth and the holder's
// own service check, so a killed holder fails its check within about
// CheckInterval+CheckTimeout and Consul invalidates the session at once; a
// TTL-only session would outlive it by 10-20 s (Consul reaps up to twice
// the TTL late). The session's lock-delay is set explicitly (one second):
// the api sends the field only when it is nonzero, and Consul's default
// of 15 s would dominate every failover. The TTL (10 s) is a backstop,
// renewed while the lock is held.
//
// The holder learns that it lost leadership from the key (a blocking query
// returns as soon as Consul releases it), from a renewal that finds the
// session gone, or from not hearing from Consul for Config.LostAfter,
// which is shorter than the TTL so the holder steps down before its
// session could expire. None of these is a fence: a paused holder acts
// before it notices. Fencing is the epoch that the leader writes and every
// peer checks, and Lock.CASJSON, which writes only while the session still
// holds the key, in one Consul transaction.
package consul
