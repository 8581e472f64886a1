package metaserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// The op log as a replication stream: reading entries for a follower,
// applying them on one, the epoch history, and the snapshot a member
// resyncs from when the log cannot bring it up to date.

// signal is a broadcast: waiters take the current channel, fire closes it
// and makes a new one.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait is closed at the next fire.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// keyEpoch is an epoch-history record: epoch -> the first seq written
// under it. It is written by the new leader's first op-log entry, so every
// member learns the history by replaying the log.
func keyEpoch(epoch uint64) []byte { return key64(pEpoch, epoch) }

// keyResync marks a member whose database is being replaced by a
// snapshot: until the mark is gone it holds no consistent state and may
// not lead.
var keyResync = []byte{pResync}

// lastSeq is the seq of the last op-log entry written.
func (c *core) lastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctr.seq
}

// epochHistory reads the epoch records, sorted by epoch.
func epochHistory(r reader) ([]epochStart, error) {
	it := r.NewIterator(util.BytesPrefix([]byte{pEpoch}), nil)
	defer it.Release()
	var h []epochStart
	for it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 || len(v) != 8 {
			return nil, fmt.Errorf("%w: epoch record %x", ErrCorrupt, k)
		}
		h = append(h, epochStart{Epoch: binary.BigEndian.Uint64(k[1:]), Start: binary.BigEndian.Uint64(v)})
	}
	return h, it.Error()
}

// lastEpoch is the newest epoch in the history, 0 when there is none.
func lastEpoch(h []epochStart) uint64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Epoch
}

// startEpoch writes the first entry of a new leader's term: the epoch
// record pointing at the entry itself.
func (c *core) startEpoch(epoch uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin("epoch")
	t.b.Put(keyEpoch(epoch), binary.BigEndian.AppendUint64(nil, t.ctr.seq+1))
	return t.commit()
}

// readLog returns the entries from seq from on, up to maxBytes (at least
// one entry) and maxEntries. ok is false when from is below the first
// entry still stored (trimmed): the caller must resync by snapshot.
func (c *core) readLog(from uint64, maxBytes, maxEntries int) (entries []logRecord, ok bool, err error) {
	if from < c.firstSeq.Load() {
		return nil, false, nil
	}
	it := c.db.NewIterator(&util.Range{Start: keyLog(from), Limit: []byte{pLog + 1}}, nil)
	defer it.Release()
	size := 0
	want := from
	for it.Next() && len(entries) < maxEntries {
		k := it.Key()
		if len(k) != 9 {
			return nil, false, fmt.Errorf("%w: op-log key %x", ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if seq != want {
			// A gap: the trim got here first.
			if len(entries) == 0 {
				return nil, false, nil
			}
			break
		}
		v := it.Value()
		if len(entries) > 0 && size+len(v) > maxBytes {
			break
		}
		entries = append(entries, logRecord{Seq: seq, Entry: append([]byte(nil), v...)})
		size += len(v)
		want++
	}
	return entries, true, it.Error()
}

// logRecord is one op-log entry on the wire.
type logRecord struct {
	Seq   uint64
	Entry []byte
}

// encodeRecords frames records as seq (8 bytes), length (4 bytes), entry.
func encodeRecords(rs []logRecord) []byte {
	n := 0
	for _, r := range rs {
		n += 12 + len(r.Entry)
	}
	b := make([]byte, 0, n)
	for _, r := range rs {
		b = binary.BigEndian.AppendUint64(b, r.Seq)
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Entry)))
		b = append(b, r.Entry...)
	}
	return b
}

func decodeRecords(b []byte) ([]logRecord, error) {
	var rs []logRecord
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, fmt.Errorf("%w: op-log record header of %d bytes", ErrCorrupt, len(b))
		}
		seq := binary.BigEndian.Uint64(b)
		n := int(binary.BigEndian.Uint32(b[8:]))
		if len(b) < 12+n {
			return nil, fmt.Errorf("%w: op-log record %d: %d of %d bytes", ErrCorrupt, seq, len(b)-12, n)
		}
		rs = append(rs, logRecord{Seq: seq, Entry: b[12 : 12+n]})
		b = b[12+n:]
	}
	return rs, nil
}

// batchCopy replays one batch into another.
type batchCopy struct{ b *leveldb.Batch }

func (r batchCopy) Put(k, v []byte) { r.b.Put(k, v) }
func (r batchCopy) Delete(k []byte) { r.b.Delete(k) }

// applyLog writes fetched entries, which must continue the local log
// (the first is the local last seq + 1), in one batch: each entry's own
// batch (which carries the counters) plus the entry itself. The entries
// are physical, so this needs no namespace logic.
func (c *core) applyLog(rs []logRecord) error {
	if len(rs) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	want := c.ctr.seq + 1
	var all leveldb.Batch
	ctr := c.ctr
	for _, r := range rs {
		if r.Seq != want {
			return fmt.Errorf("%w: op-log entry %d where %d was expected", ErrCorrupt, r.Seq, want)
		}
		e, err := decodeLogEntry(r.Entry)
		if err != nil {
			return err
		}
		var b leveldb.Batch
		if err := b.Load(e.Batch); err != nil {
			return fmt.Errorf("%w: op-log entry %d: %v", ErrCorrupt, r.Seq, err)
		}
		if err := b.Replay(batchCopy{&all}); err != nil {
			return fmt.Errorf("%w: op-log entry %d: %v", ErrCorrupt, r.Seq, err)
		}
		all.Put(keyLog(r.Seq), r.Entry)
		want++
	}
	if err := c.db.Write(&all, nil); err != nil {
		return ioError("apply op log", err)
	}
	// The entries carried the leader's counters; read them back so that
	// this member's view (seq, statistics) follows.
	v, ok, err := getOpt(c.db, keyMeta)
	if err != nil || !ok {
		return ioError("apply op log", fmt.Errorf("counters missing after apply: %v", err))
	}
	if ctr, err = decodeCounters(v); err != nil {
		return err
	}
	if ctr.seq != want-1 {
		return fmt.Errorf("%w: counters say seq %d after applying up to %d", ErrCorrupt, ctr.seq, want-1)
	}
	c.ctr = ctr
	if c.firstSeq.Load() > rs[0].Seq {
		c.firstSeq.Store(rs[0].Seq)
	}
	c.appended.fire()
	return nil
}

// snapshotHeader is the first line of a snapshot stream.
type snapshotHeader struct {
	Seq   uint64 `json:"seq"`
	Epoch uint64 `json:"epoch"`
}

// snapshot returns every key of the database except the op log itself
// and the sync marker, as one consistent view, with the seq it reflects.
// The stream is a JSON header line, then records of key length (4 bytes),
// key, value length (4 bytes), value.
func (c *core) snapshot(epoch uint64) ([]byte, uint64, error) {
	c.mu.Lock()
	snap, err := c.db.GetSnapshot()
	seq := c.ctr.seq
	c.mu.Unlock()
	if err != nil {
		return nil, 0, ioError("snapshot", err)
	}
	defer snap.Release()
	hdr, _ := json.Marshal(snapshotHeader{Seq: seq, Epoch: epoch})
	out := append(hdr, '\n')
	it := snap.NewIterator(nil, nil)
	defer it.Release()
	for it.Next() {
		k := it.Key()
		if len(k) > 0 && (k[0] == pLog || k[0] == pSync || k[0] == pResync) {
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(it.Value())))
		out = append(out, it.Value()...)
	}
	if err := it.Error(); err != nil {
		return nil, 0, ioError("snapshot", err)
	}
	return out, seq, nil
}

// markResync records that this member's state is about to be replaced
// (it may not lead until installSnapshot finishes).
func (c *core) markResync() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b leveldb.Batch
	b.Put(keyResync, []byte{1})
	if err := c.db.Write(&b, nil); err != nil {
		return ioError("mark resync", err)
	}
	return nil
}

// resyncing reports whether a snapshot install was started and not
// finished.
func (c *core) resyncing() bool {
	_, ok, err := getOpt(c.db, keyResync)
	return ok || err != nil
}

// installSnapshot replaces the whole database with a snapshot stream:
// it deletes every key, writes the snapshot's, and leaves the op log empty
// with the next entry at the snapshot's seq + 1. The resync mark written
// first is removed last, so a crash in between leaves a member that knows
// it must resync again.
func (c *core) installSnapshot(data []byte) (uint64, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return 0, fmt.Errorf("%w: snapshot without a header", ErrCorrupt)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(data[:nl], &hdr); err != nil {
		return 0, fmt.Errorf("%w: snapshot header: %v", ErrCorrupt, err)
	}
	if err := c.markResync(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Delete everything but the mark, in batches.
	var b leveldb.Batch
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		err := c.db.Write(&b, nil)
		b.Reset()
		return err
	}
	it := c.db.NewIterator(nil, nil)
	for it.Next() {
		if k := it.Key(); len(k) == 1 && k[0] == pResync {
			continue
		}
		b.Delete(append([]byte(nil), it.Key()...))
		if b.Len() >= 4096 {
			if err := flush(); err != nil {
				it.Release()
				return 0, ioError("resync", err)
			}
		}
	}
	it.Release()
	if err := it.Error(); err != nil {
		return 0, ioError("resync", err)
	}
	rest := data[nl+1:]
	for len(rest) > 0 {
		if len(rest) < 4 {
			return 0, fmt.Errorf("%w: snapshot record", ErrCorrupt)
		}
		kl := int(binary.BigEndian.Uint32(rest))
		if len(rest) < 4+kl+4 {
			return 0, fmt.Errorf("%w: snapshot record", ErrCorrupt)
		}
		k := rest[4 : 4+kl]
		vl := int(binary.BigEndian.Uint32(rest[4+kl:]))
		if len(rest) < 8+kl+vl {
			return 0, fmt.Errorf("%w: snapshot record", ErrCorrupt)
		}
		b.Put(k, rest[8+kl:8+kl+vl])
		rest = rest[8+kl+vl:]
		if b.Len() >= 4096 {
			if err := flush(); err != nil {
				return 0, ioError("resync", err)
			}
		}
	}
	b.Delete(keyResync)
	if err := flush(); err != nil {
		return 0, ioError("resync", err)
	}
	v, ok, err := getOpt(c.db, keyMeta)
	if err != nil || !ok {
		return 0, fmt.Errorf("%w: snapshot without counters", ErrCorrupt)
	}
	if c.ctr, err = decodeCounters(v); err != nil {
		return 0, err
	}
	if c.ctr.seq != hdr.Seq {
		return 0, fmt.Errorf("%w: snapshot counters at seq %d, header %d", ErrCorrupt, c.ctr.seq, hdr.Seq)
	}
	c.firstSeq.Store(hdr.Seq + 1)
	if err := c.syncMarker(); err != nil {
		return 0, ioError("resync", err)
	}
	return hdr.Seq, nil
}

// reload rebuilds the in-memory state (counters, orphans, tracker, the
// session table) from the database, as at start: a follower that becomes
// leader has applied the log physically and knows only the database.
func (c *core) reload() error {
	c.mu.Lock()
	c.sessions = make(map[string]*session)
	c.holders = make(map[uint64]int)
	c.orphans = make(map[uint64]int64)
	c.tracker.reset()
	c.started = c.clock()
	c.mu.Unlock()
	return c.load()
}

// startedAt is when this process started serving as leader (or started).
func (c *core) startedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}
