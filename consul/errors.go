package consul

import "errors"

// Sentinel errors. Callers test for them with errors.Is; the package wraps
// them with the key or service concerned.
var (
	// ErrInvalidConfig is returned by Config.Validate and New for a Config
	// whose fields, or their relations, are unusable.
	ErrInvalidConfig = errors.New("consul: invalid config")

	// ErrNotFound means the key does not exist.
	ErrNotFound = errors.New("consul: key not found")

	// ErrCASConflict means a check-and-set write lost: the key's
	// ModifyIndex was no longer the one the caller read.
	ErrCASConflict = errors.New("consul: check-and-set conflict")

	// ErrNotLeader means the caller asked for something only the lock
	// holder may do, and it does not hold the lock (any more).
	ErrNotLeader = errors.New("consul: not the leader")

	// ErrLockLost is what Lock.Err returns once the channel from
	// Lock.Acquire has closed: the session was invalidated, the leader key
	// was taken or deleted, or Consul was unreachable for longer than
	// Config.LostAfter.
	ErrLockLost = errors.New("consul: leadership lost")

	// ErrLockHeld is returned by Lock.Acquire when the Lock already holds
	// the leader key: release it (or wait for the loss) first.
	ErrLockHeld = errors.New("consul: lock already held by this Lock")
)
