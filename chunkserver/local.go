package chunkserver

import (
	"context"
	"errors"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// ReadBlock reads bytes [off, off+n) of block id for a client in this
// process, as the all-in-one server's mount and httpd are: the bytes are
// verified against their CRC32Cs exactly as for a GET, without the HTTP
// round trip and the two copies through a loopback socket (a co-located
// reader skipping the data server's network path, as HDFS short-circuit
// reads do). The result aliases buf when buf holds the CRC pieces that
// cover the range. Errors carry the same codes a GET answers with; a
// closed server is UNAVAILABLE, so the caller tries another member.
func (s *Server) ReadBlock(ctx context.Context, id uint64, off, n int64, buf []byte) ([]byte, error) {
	start := time.Now()
	pick := func(size int64) (int64, int64, error) {
		if off < 0 || n <= 0 || off > size || n > size-off {
			return 0, 0, wire.Errorf(wire.ErrRange, "chunkserver %s: block %s: range %d+%d outside its %d bytes",
				s.addr, wire.BlockName(id), off, n, size)
		}
		return off, n, nil
	}
	rr, err := s.store.ReadRange(ctx, id, pick, buf)
	s.metrics.blockSeconds.WithLabelValues(methodLocal).Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
	case errors.Is(err, wire.ErrChecksum):
		s.metrics.checksumErrors.Inc()
		s.log.Error("block failed verification", "err", err)
		return nil, err
	case errors.Is(err, ErrClosed):
		return nil, wire.Errorf(wire.ErrUnavailable, "chunkserver %s: shutting down", s.addr)
	default:
		return nil, err
	}
	s.metrics.bytesRead.Add(float64(len(rr.Data)))
	return rr.Data, nil
}

// methodLocal labels in-process reads in reelfs_chunk_block_seconds.
const methodLocal = "LOCAL"
