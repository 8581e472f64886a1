package chunkserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// Binlog record layout: fixed 40 bytes, little-endian, so the record of
// seq s in a segment starting at base sits at offset (s-base)*recordLen.
//
//	[0:8]   seq
//	[8:16]  block id
//	[16:24] time, Unix nanoseconds
//	[24:28] block size
//	[28]    op (opPut, opDelete)
//	[29]    record version (1)
//	[30:36] zero
//	[36:40] CRC32C of bytes [0:36]
const (
	recordLen     = 40
	recordVersion = 1
	opPut         = 1
	opDelete      = 2
	segmentSuffix = ".log"
	// maxSegmentRecords caps a segment file at 2.5 MiB.
	maxSegmentRecords = 1 << 16
)

// BinlogOptions configure OpenBinlog.
type BinlogOptions struct {
	// Keep is how many of the newest entries are retained; older segments
	// are deleted once the newer ones hold at least Keep entries.
	Keep int
	// Logger receives recovery and trimming notes; nil discards them.
	Logger *slog.Logger
}

// segment is one binlog file: records base, base+1, ..., base+n-1.
type segment struct {
	base uint64
	n    uint64
	f    *os.File
}

// Binlog is the chunkserver's append-only log of local changes. See the
// package documentation for the file format and the durability rules.
type Binlog struct {
	dir    string
	keep   uint64
	segCap uint64 // records per segment before a new one starts
	log    *slog.Logger
	tab    *crc32.Table

	// syncMu serializes fsyncs and segment removal. Writers append under
	// mu and then fsync under syncMu without holding mu, so appends that
	// arrive during an fsync share the next one (group commit); removing
	// segments only under syncMu means a segment is never closed while a
	// sync still uses it.
	syncMu sync.Mutex

	// mu guards everything below.
	mu     sync.Mutex
	segs   []*segment // oldest first; the last is the one appended to
	last   uint64     // newest seq written (maybe not yet durable)
	synced uint64     // newest seq durable on disk; readers see only these
	wake   chan struct{}
	err    error // sticky: set by the first failed write or fsync
	closed bool
	// cum[seq%cumRing] is the bytes of puts logged up to seq since this
	// process opened the log, for the bytes a follower is behind.
	cum      [cumRing]uint64
	cumTotal uint64
}

// cumRing is how many recent entries BytesAfter can count exactly.
const cumRing = 1 << 16

// OpenBinlog opens (creating if needed) the binlog in dir, drops a torn
// record left at the tail by a crash and continues the sequence after the
// newest durable entry.
func OpenBinlog(dir string, opts BinlogOptions) (*Binlog, error) {
	if opts.Keep < 1 {
		return nil, fmt.Errorf("chunkserver: binlog: Keep must be at least 1, got %d", opts.Keep)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkserver: binlog: %w", err)
	}
	b := &Binlog{
		dir:    dir,
		keep:   uint64(opts.Keep),
		segCap: min(max(uint64(opts.Keep)/4, 1), maxSegmentRecords),
		log:    logger,
		tab:    castagnoli(),
		wake:   make(chan struct{}),
	}
	if err := b.load(); err != nil {
		b.closeFiles()
		return nil, err
	}
	b.trim()
	return b, nil
}

// load opens the segment files, checks that they are contiguous and
// recovers the tail of the newest one.
func (b *Binlog) load() error {
	names, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("chunkserver: binlog: %w", err)
	}
	var bases []uint64
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || base == 0 {
			b.log.Warn("binlog: ignoring stray file", "file", name)
			continue
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for _, base := range bases {
		f, err := os.OpenFile(b.segPath(base), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("chunkserver: binlog: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("chunkserver: binlog: %w", err)
		}
		b.segs = append(b.segs, &segment{base: base, n: uint64(fi.Size()) / recordLen, f: f})
	}
	if len(b.segs) == 0 {
		return nil
	}
	if err := b.recoverTail(b.segs[len(b.segs)-1]); err != nil {
		return err
	}
	// A gap between segments (a file removed by hand, a torn older file)
	// makes everything before it unusable: keep the contiguous suffix.
	for i := len(b.segs) - 1; i > 0; i-- {
		prev, cur := b.segs[i-1], b.segs[i]
		if prev.base+prev.n != cur.base {
			b.log.Warn("binlog: segments are not contiguous; dropping the older ones",
				"segment", prev.base, "records", prev.n, "next", cur.base)
			for _, s := range b.segs[:i] {
				s.f.Close()
				os.Remove(b.segPath(s.base))
			}
			b.segs = b.segs[i:]
			break
		}
	}
	tail := b.segs[len(b.segs)-1]
	b.last = tail.base + tail.n - 1
	b.synced = b.last
	return nil
}

// recoverTail verifies the records of the newest segment and cuts off the
// bad ones at its end: after a crash only records written after the last
// fsync can be torn, and none of them was acknowledged or served. A bad
// record followed by good ones is damage, not a torn write; it stays (and
// reads of it fail) so that no durable seq is ever reused.
func (b *Binlog) recoverTail(s *segment) error {
	buf := make([]byte, s.n*recordLen)
	if _, err := s.f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("chunkserver: binlog: read %s: %w", b.segPath(s.base), err)
	}
	good, damaged := uint64(0), 0
	for i := uint64(0); i < s.n; i++ {
		if _, err := b.decode(buf[i*recordLen:(i+1)*recordLen], s.base+i); err != nil {
			damaged++
			continue
		}
		good = i + 1
	}
	if bad := s.n - good; bad > 0 {
		b.log.Warn("binlog: dropping torn records at the tail", "segment", s.base, "records", bad)
		damaged -= int(bad)
	}
	if damaged > 0 {
		b.log.Error("binlog: damaged records inside the newest segment", "segment", s.base, "records", damaged)
	}
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("chunkserver: binlog: %w", err)
	}
	if uint64(fi.Size()) != good*recordLen {
		if err := s.f.Truncate(int64(good * recordLen)); err != nil {
			return fmt.Errorf("chunkserver: binlog: truncate: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("chunkserver: binlog: sync: %w", err)
		}
	}
	s.n = good
	return nil
}

func (b *Binlog) segPath(base uint64) string {
	return filepath.Join(b.dir, fmt.Sprintf("%020d%s", base, segmentSuffix))
}

// encode writes e as a record into p (recordLen bytes).
func (b *Binlog) encode(p []byte, e wire.BinlogEntry) {
	clear(p)
	binary.LittleEndian.PutUint64(p[0:], e.Seq)
	binary.LittleEndian.PutUint64(p[8:], e.ID)
	binary.LittleEndian.PutUint64(p[16:], uint64(e.Time))
	binary.LittleEndian.PutUint32(p[24:], e.Size)
	if e.Op == wire.BinlogPut {
		p[28] = opPut
	} else {
		p[28] = opDelete
	}
	p[29] = recordVersion
	binary.LittleEndian.PutUint32(p[36:], crc32.Checksum(p[:36], b.tab))
}

// decode checks and decodes the record that should hold seq.
func (b *Binlog) decode(p []byte, seq uint64) (wire.BinlogEntry, error) {
	if got := binary.LittleEndian.Uint32(p[36:]); got != crc32.Checksum(p[:36], b.tab) {
		return wire.BinlogEntry{}, fmt.Errorf("record %d: checksum mismatch", seq)
	}
	if p[29] != recordVersion {
		return wire.BinlogEntry{}, fmt.Errorf("record %d: version %d", seq, p[29])
	}
	e := wire.BinlogEntry{
		Seq:  binary.LittleEndian.Uint64(p[0:]),
		ID:   binary.LittleEndian.Uint64(p[8:]),
		Time: int64(binary.LittleEndian.Uint64(p[16:])),
		Size: binary.LittleEndian.Uint32(p[24:]),
	}
	switch p[28] {
	case opPut:
		e.Op = wire.BinlogPut
	case opDelete:
		e.Op = wire.BinlogDelete
	default:
		return wire.BinlogEntry{}, fmt.Errorf("record %d: unknown op %d", seq, p[28])
	}
	if e.Seq != seq {
		return wire.BinlogEntry{}, fmt.Errorf("record %d: holds seq %d", seq, e.Seq)
	}
	return e, nil
}

// Append writes e (Op and ID set; Seq is assigned) and returns once it is
// durable, with its sequence number.
func (b *Binlog) Append(ctx context.Context, e wire.BinlogEntry) (uint64, error) {
	seq, err := b.Stage(ctx, e)
	if err != nil {
		return 0, err
	}
	return seq, b.syncTo(seq)
}

var _ stagedLog = (*Binlog)(nil)

// Stage writes e like Append but returns before it is durable; Sync makes
// it so. Until then readers do not see it, and a crash may lose it.
func (b *Binlog) Stage(ctx context.Context, e wire.BinlogEntry) (uint64, error) {
	if e.Op != wire.BinlogPut && e.Op != wire.BinlogDelete {
		return 0, wire.Errorf(wire.ErrInvalid, "chunkserver: binlog: unknown op %q", e.Op)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return b.write(e)
}

// Sync returns once entry seq (from Stage) is durable, sharing the fsync
// with concurrent appends.
func (b *Binlog) Sync(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.syncTo(seq)
}

// write assigns the next seq to e and writes its record (not yet synced).
func (b *Binlog) write(e wire.BinlogEntry) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(b.segs) == 0 || b.segs[len(b.segs)-1].n >= b.segCap {
		if err := b.rollLocked(); err != nil {
			return 0, err
		}
	}
	s := b.segs[len(b.segs)-1]
	e.Seq = b.last + 1
	if e.Time == 0 {
		e.Time = time.Now().UnixNano()
	}
	var rec [recordLen]byte
	b.encode(rec[:], e)
	if _, err := s.f.WriteAt(rec[:], int64(s.n*recordLen)); err != nil {
		b.err = fmt.Errorf("%w: write seq %d: %w", ErrBinlogFailed, e.Seq, err)
		return 0, b.err
	}
	s.n++
	b.last = e.Seq
	if e.Op == wire.BinlogPut {
		b.cumTotal += uint64(e.Size)
	}
	b.cum[e.Seq%cumRing] = b.cumTotal
	return e.Seq, nil
}

// BytesAfter returns the bytes of puts durable after seq ack: what a
// follower that holds everything up to ack still has to copy. Entries
// older than the last cumRing (or logged before this process started)
// are not counted, so it is a lower bound for a follower that far behind.
func (b *Binlog) BytesAfter(ack uint64) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ack >= b.synced {
		return 0
	}
	end := b.cum[b.synced%cumRing]
	start := ack
	if b.synced-start >= cumRing {
		start = b.synced - cumRing + 1
	}
	if v := b.cum[start%cumRing]; v <= end {
		return end - v
	}
	return 0
}

// rollLocked makes the current segment durable and starts a new one. The
// caller holds mu; rolls are rare (every segCap records), so holding mu
// through these fsyncs is cheap overall.
func (b *Binlog) rollLocked() error {
	if n := len(b.segs); n > 0 {
		if err := b.segs[n-1].f.Sync(); err != nil {
			b.err = fmt.Errorf("%w: sync: %w", ErrBinlogFailed, err)
			return b.err
		}
		b.advanceLocked(b.last)
	}
	base := b.last + 1
	f, err := os.OpenFile(b.segPath(base), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		b.err = fmt.Errorf("%w: new segment: %w", ErrBinlogFailed, err)
		return b.err
	}
	if err := syncDir(b.dir); err != nil {
		f.Close()
		b.err = fmt.Errorf("%w: sync dir: %w", ErrBinlogFailed, err)
		return b.err
	}
	b.segs = append(b.segs, &segment{base: base, f: f})
	return nil
}

// advanceLocked marks every seq up to seq durable and wakes long-polls.
func (b *Binlog) advanceLocked(seq uint64) {
	if seq <= b.synced {
		return
	}
	b.synced = seq
	close(b.wake)
	b.wake = make(chan struct{})
}

// syncTo returns once seq is durable. One fsync covers every record
// written before it started, so concurrent appenders share fsyncs.
func (b *Binlog) syncTo(seq uint64) error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	if b.synced >= seq {
		b.mu.Unlock()
		return nil
	}
	if b.err != nil || b.closed {
		err := b.err
		if err == nil {
			err = ErrClosed
		}
		b.mu.Unlock()
		return err
	}
	// Records before the current segment were synced when it rolled.
	f, target := b.segs[len(b.segs)-1].f, b.last
	b.mu.Unlock()

	err := f.Sync()

	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("%w: sync: %w", ErrBinlogFailed, err)
		}
		return b.err
	}
	b.advanceLocked(target)
	b.trimLocked()
	return nil
}

// trim drops old segments beyond the retention.
func (b *Binlog) trim() {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trimLocked()
}

// trimLocked removes the oldest segments while the newer ones still hold
// Keep entries. The newest segment always stays, so Last never goes back.
// The caller holds syncMu and mu.
func (b *Binlog) trimLocked() {
	var total uint64
	for _, s := range b.segs {
		total += s.n
	}
	for len(b.segs) > 1 && total-b.segs[0].n >= b.keep {
		s := b.segs[0]
		s.f.Close()
		if err := os.Remove(b.segPath(s.base)); err != nil {
			b.log.Warn("binlog: remove old segment", "segment", s.base, "err", err)
		}
		total -= s.n
		b.segs = b.segs[1:]
	}
}

// firstLocked is the oldest retained seq, or last+1 when none is held.
func (b *Binlog) firstLocked() uint64 {
	for _, s := range b.segs {
		if s.n > 0 {
			return s.base
		}
	}
	return b.last + 1
}

// Last returns the newest durable sequence number (0 before the first).
func (b *Binlog) Last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.synced
}

// First returns the oldest retained sequence number; Last()+1 when the log
// holds nothing. A follower whose next seq is below First must resync.
func (b *Binlog) First() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.firstLocked()
}

// Err returns the sticky failure that stops appends, or nil.
func (b *Binlog) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Read returns up to limit durable entries starting at from (or at First
// when from is older), with First and Last.
func (b *Binlog) Read(ctx context.Context, from uint64, limit int) (wire.BinlogReply, error) {
	if err := ctx.Err(); err != nil {
		return wire.BinlogReply{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return wire.BinlogReply{}, ErrClosed
	}
	reply := wire.BinlogReply{Entries: []wire.BinlogEntry{}, First: b.firstLocked(), Last: b.synced}
	from = max(from, reply.First)
	if limit <= 0 || from > b.synced {
		return reply, nil
	}
	end := min(b.synced, from+uint64(limit)-1) // inclusive
	i := sort.Search(len(b.segs), func(j int) bool { return b.segs[j].base+b.segs[j].n > from })
	for ; i < len(b.segs) && from <= end; i++ {
		s := b.segs[i]
		hi := min(end, s.base+s.n-1)
		buf := make([]byte, (hi-from+1)*recordLen)
		if _, err := s.f.ReadAt(buf, int64((from-s.base)*recordLen)); err != nil {
			return wire.BinlogReply{}, wire.Errorf(wire.ErrIO, "chunkserver: binlog: read segment %d: %v", s.base, err)
		}
		for off := 0; off < len(buf); off += recordLen {
			e, err := b.decode(buf[off:off+recordLen], from)
			if err != nil {
				return wire.BinlogReply{}, wire.Errorf(wire.ErrIO, "chunkserver: binlog: segment %d: %v", s.base, err)
			}
			reply.Entries = append(reply.Entries, e)
			from++
		}
	}
	return reply, nil
}

// Wait blocks until an entry with seq >= from is durable, ctx is done or
// the binlog closes. It returns nil in the first case.
func (b *Binlog) Wait(ctx context.Context, from uint64) error {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.synced >= from {
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the segment files and wakes every Wait.
func (b *Binlog) Close() error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.wake)
	b.wake = make(chan struct{})
	return b.closeFiles()
}

func (b *Binlog) closeFiles() error {
	var errs []error
	for _, s := range b.segs {
		errs = append(errs, s.f.Close())
	}
	b.segs = nil
	return errors.Join(errs...)
}
