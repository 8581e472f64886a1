package chunkserver

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
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
	// Meta is the tracker (metaserver) address to heartbeat to; empty
	// disables heartbeats.
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
		if err := checkHostPort(c.Meta, true); err != nil {
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
