package chunkserver

import (
	"fmt"
	"github.com/reelfs/reelfs/internal/wire"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/reelfs/reelfs/consul"
)

// Config configures a chunkserver. cmd/reelfs fills it from flags and the
// environment; start from DefaultConfig.
type Config struct {
	// Dir holds the blocks (Dir/blocks), the binlog (Dir/binlog) and the
	// server id (Dir/id). Required.
	Dir string
	// Listen is the TCP address to serve on; port 0 picks a free port.
	Listen string
	// Advertise is the host:port other peers use to reach this server;
	// empty means the bound listener address.
	Advertise string
	// ID names this server in the group; empty means a random id created
	// on first start and kept in Dir/id.
	ID string
	// Group is the group of chunkservers this one belongs to (>= 1).
	Group uint32
	// Meta is the tracker (metaserver) address to heartbeat to, or several
	// separated by commas (failover: the leader answers); empty disables
	// heartbeats.
	Meta string
	// Secret is the cluster secret: when set, every request but /metrics
	// must carry it, and heartbeats send it.
	Secret string
	// Reserve is the free space in bytes that PUTs leave on the disk.
	Reserve uint64
	// HeartbeatEvery is the interval between heartbeats to Meta.
	HeartbeatEvery time.Duration
	// BinlogKeep is how many of the newest binlog entries are retained.
	BinlogKeep int
	// TrailerCache is how many decoded block trailers are kept in memory
	// (least recently used go first), so a warm read of a block skips the
	// read of its trailer. Each takes at most about 350 bytes, so the
	// default of 65,536 costs at most about 23 MiB. 0 disables the cache.
	TrailerCache int
	// Concurrency is the most connections served at once; fasthttp
	// answers any more with 503 at accept. A PUT body (up to a block) is
	// read into memory before the handler runs, so Concurrency x 4 MiB
	// bounds the memory of bodies in flight.
	Concurrency int

	// Replication (with Meta set; see the package documentation).

	// MinCopies is the write quorum's floor: a PUT is acknowledged only
	// when every member of the group's in-sync set holds the block, and
	// only while that set has at least MinCopies members. The tracker
	// uses the largest MinCopies any member of a group reports.
	MinCopies int
	// AckTimeout bounds how long a PUT waits for the in-sync set; past
	// it the PUT fails UNAVAILABLE (the block stays, the client retries).
	AckTimeout time.Duration
	// ShipWait is the long-poll wait of a fetch of a peer's binlog.
	ShipWait time.Duration
	// ShipBatch is the most entries one fetch asks for.
	ShipBatch int
	// ShipParallel is how many blocks one follower copies at once.
	ShipParallel int
	// ResyncRate bounds an inventory resync, in bytes per second (0: no
	// bound), so serving goes on while a new member fills up.
	ResyncRate int64
	// ScrubRate is the scrubber's read rate in bytes per second; 0 turns
	// the background passes off (reads that find damage still repair).
	ScrubRate int64
	// ScrubPause is the pause between two full scrub passes.
	ScrubPause time.Duration
	// Consul, when set, is the agent Run registers the server with as
	// service reelfs-chunk (tag group-N, Meta member=ID), checked at
	// /v1/health, and deregisters from when Run ends. Nil: no Consul (the
	// embedded mode).
	Consul *consul.Client
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in; Dir must
// still be set.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:9410",
		Group:          1,
		Reserve:        256 << 20,
		HeartbeatEvery: 2 * time.Second,
		BinlogKeep:     1_000_000,
		TrailerCache:   64 << 10,
		Concurrency:    256,
		MinCopies:      2,
		AckTimeout:     30 * time.Second,
		ShipWait:       5 * time.Second,
		ShipBatch:      256,
		ShipParallel:   4,
		ResyncRate:     64 << 20,
		ScrubRate:      16 << 20,
		ScrubPause:     time.Hour,
	}
}

// Validate checks every field and their relations.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.Dir == "" {
		return bad("Dir is required")
	}
	if err := checkHostPort(c.Listen, false); err != nil {
		return bad("Listen %q: %v", c.Listen, err)
	}
	if c.Advertise != "" {
		if err := checkHostPort(c.Advertise, true); err != nil {
			return bad("Advertise %q: %v", c.Advertise, err)
		}
	}
	if c.ID != "" {
		if err := checkID(c.ID); err != nil {
			return bad("ID %q: %v", c.ID, err)
		}
	}
	if c.Group == 0 {
		return bad("Group must be at least 1")
	}
	if c.Meta != "" {
		if _, err := wire.ParseLeaders(c.Meta); err != nil {
			return bad("Meta %q: %v", c.Meta, err)
		}
		if c.HeartbeatEvery <= 0 {
			return bad("HeartbeatEvery must be positive when Meta is set, got %v", c.HeartbeatEvery)
		}
	}
	for i := 0; i < len(c.Secret); i++ {
		if b := c.Secret[i]; b < 0x21 || b > 0x7e {
			return bad("Secret must be printable ASCII without spaces")
		}
	}
	if c.BinlogKeep < 1 {
		return bad("BinlogKeep must be at least 1, got %d", c.BinlogKeep)
	}
	switch {
	case c.Concurrency < 8 || c.Concurrency > 1<<16:
		return bad("Concurrency must be in 8..%d, got %d", 1<<16, c.Concurrency)
	case c.MinCopies < 1 || c.MinCopies > 16:
		return bad("MinCopies must be in 1..16, got %d", c.MinCopies)
	case c.AckTimeout <= 0:
		return bad("AckTimeout must be positive, got %v", c.AckTimeout)
	case c.ShipWait <= 0 || c.ShipWait > maxWait:
		return bad("ShipWait must be in (0, %v], got %v", maxWait, c.ShipWait)
	case c.ShipBatch < 1 || c.ShipBatch > maxListLimit:
		return bad("ShipBatch must be in 1..%d, got %d", maxListLimit, c.ShipBatch)
	case c.ShipParallel < 1 || c.ShipParallel > 64:
		return bad("ShipParallel must be in 1..64, got %d", c.ShipParallel)
	case c.ResyncRate < 0:
		return bad("ResyncRate must be 0 (no bound) or more, got %d", c.ResyncRate)
	case c.ScrubRate < 0:
		return bad("ScrubRate must be 0 (off) or more, got %d", c.ScrubRate)
	case c.ScrubRate > 0 && c.ScrubPause <= 0:
		return bad("ScrubPause must be positive, got %v", c.ScrubPause)
	}
	if c.TrailerCache < 0 {
		return bad("TrailerCache must be 0 (off) or more, got %d", c.TrailerCache)
	}
	return nil
}

// checkHostPort checks a host:port address; needHost demands a host (an
// address others dial rather than one we listen on).
func checkHostPort(addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if needHost && host == "" {
		return fmt.Errorf("missing host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	if needHost && p == 0 {
		return fmt.Errorf("port 0")
	}
	return nil
}

// checkID accepts 1-64 characters of [A-Za-z0-9._-].
func checkID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("want 1 to 64 characters, got %d", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("character %q not in [A-Za-z0-9._-]", c)
		}
	}
	return nil
}
