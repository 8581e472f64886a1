package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// Config configures a Client. Start from DefaultConfig and set Meta.
type Config struct {
	Meta         string        // metaserver host:port (required); with failover, several separated by commas
	Secret       string        // cluster secret, sent on every call when set
	BlockSize    int           // max block size, default wire.MaxBlockSize (4 MiB)
	CacheBytes   int64         // LRU block cache limit, default 256 MiB
	WriteBuffer  int64         // dirty bytes per inode before upload starts in background, default 32 MiB
	DirtyBytes   int64         // dirty bytes of all inodes together; writers wait above it, default 256 MiB
	Uploads      int           // block PUTs in flight per client, default 8
	Prefetch     int           // blocks fetched ahead on sequential reads, default 8
	RetryTimeout time.Duration // give up retrying transient errors after this, default 60s
	SessionEvery time.Duration // session keep-alive interval, default 5s
	// CommitEvery bounds how long written bytes stay private to this
	// client: a file open for writing uploads and commits (without fsync)
	// what it holds at most this long after it was written, so other
	// clients see a growing file grow and a crash of this process loses
	// at most about this much of a long write. Default 1s; 0 commits
	// only at Flush, Sync, Close and the size thresholds.
	CommitEvery time.Duration
	Logger      *slog.Logger // default: discard (never slog.Default)
	// Local maps the addresses of chunkservers running in this process
	// (the all-in-one server) to their block stores: blocks on them are
	// read in-process instead of over HTTP. Writes still go over HTTP.
	Local map[string]LocalBlocks
}

// LocalBlocks is a chunkserver in the client's own process;
// *chunkserver.Server implements it.
type LocalBlocks interface {
	// ReadBlock returns bytes [off, off+n) of block id, verified against
	// their checksums, in buf when buf is large enough. Its errors carry
	// the codes a GET of the block would answer with.
	ReadBlock(ctx context.Context, id uint64, off, n int64, buf []byte) ([]byte, error)
}

// Limits Validate enforces.
const (
	minBlockSize   = 64 << 10
	minCacheBytes  = 2 * pageSize
	maxUploads     = 1024
	maxPrefetch    = 64
	minSessionTick = 10 * time.Millisecond
	minCommitEvery = 100 * time.Millisecond
)

// DefaultConfig returns the defaults documented on Config; Meta is empty.
func DefaultConfig() Config {
	return Config{
		BlockSize:    wire.MaxBlockSize,
		CacheBytes:   256 << 20,
		WriteBuffer:  32 << 20,
		DirtyBytes:   256 << 20,
		Uploads:      8,
		Prefetch:     8,
		RetryTimeout: 60 * time.Second,
		SessionEvery: 5 * time.Second,
		CommitEvery:  time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate checks every field and their relations.
func (c Config) Validate() error {
	switch {
	case c.Meta == "":
		return fmt.Errorf("%w: Meta (metaserver host:port) is required", ErrConfig)
	case !validMeta(c.Meta):
		return fmt.Errorf("%w: Meta %q: want host:port, or several separated by commas", ErrConfig, c.Meta)
	case c.BlockSize < minBlockSize || c.BlockSize > wire.MaxBlockSize:
		return fmt.Errorf("%w: BlockSize %d outside [%d, %d]", ErrConfig, c.BlockSize, minBlockSize, wire.MaxBlockSize)
	case c.CacheBytes < minCacheBytes:
		return fmt.Errorf("%w: CacheBytes %d below %d", ErrConfig, c.CacheBytes, minCacheBytes)
	case c.WriteBuffer < int64(c.BlockSize):
		return fmt.Errorf("%w: WriteBuffer %d below BlockSize %d", ErrConfig, c.WriteBuffer, c.BlockSize)
	case c.DirtyBytes < int64(c.BlockSize):
		return fmt.Errorf("%w: DirtyBytes %d below BlockSize %d", ErrConfig, c.DirtyBytes, c.BlockSize)
	case c.Uploads < 1 || c.Uploads > maxUploads:
		return fmt.Errorf("%w: Uploads %d outside [1, %d]", ErrConfig, c.Uploads, maxUploads)
	case c.Prefetch < 0 || c.Prefetch > maxPrefetch:
		return fmt.Errorf("%w: Prefetch %d outside [0, %d]", ErrConfig, c.Prefetch, maxPrefetch)
	case c.RetryTimeout <= 0:
		return fmt.Errorf("%w: RetryTimeout must be positive", ErrConfig)
	case c.SessionEvery < minSessionTick:
		return fmt.Errorf("%w: SessionEvery %v below %v", ErrConfig, c.SessionEvery, minSessionTick)
	case c.CommitEvery != 0 && c.CommitEvery < minCommitEvery:
		return fmt.Errorf("%w: CommitEvery %v below %v (0 turns periodic commits off)", ErrConfig, c.CommitEvery, minCommitEvery)
	case c.Logger == nil:
		return fmt.Errorf("%w: Logger is nil", ErrConfig)
	}
	for addr, lb := range c.Local {
		if addr == "" || lb == nil {
			return fmt.Errorf("%w: Local has an empty address or a nil store (%q)", ErrConfig, addr)
		}
	}
	return nil
}

func validMeta(list string) bool {
	_, err := wire.ParseLeaders(list)
	return err == nil
}
