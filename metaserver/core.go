package metaserver

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/reelfs/reelfs/internal/wire"
)

// reader is what read-only ops need from the database or a snapshot of it.
type reader interface {
	Get(key []byte, ro *opt.ReadOptions) ([]byte, error)
	NewIterator(slice *util.Range, ro *opt.ReadOptions) iterator.Iterator
}

var (
	_ reader = (*leveldb.DB)(nil)
	_ reader = (*leveldb.Snapshot)(nil)
)

// coreConfig is the part of Config the state machine needs.
type coreConfig struct {
	Dir              string
	SessionTTL       time.Duration
	HeartbeatTimeout time.Duration
	ISR              isrRules
	ReadDirLimit     int
	Logger           *slog.Logger
}

// core is the metaserver's state machine: the namespace, files, leases,
// queue and op log in goleveldb, plus the in-memory session table and the
// tracker. It does no network I/O; the Server puts HTTP and the background
// loops around it.
type core struct {
	db           *leveldb.DB
	log          *slog.Logger
	clock        func() time.Time
	ttl          time.Duration
	readDirLimit int
	tracker      *tracker
	syncer       *syncer
	started      time.Time

	// mu serializes every mutation: an op reads what it needs, builds one
	// batch and writes it while holding mu, so read-modify-writes never
	// interleave and the counters stay exact. It guards the fields below.
	mu       sync.Mutex
	ctr      counters
	sessions map[string]*session
	holders  map[uint64]int   // ino -> number of live sessions holding it open
	orphans  map[uint64]int64 // ino -> Unix nanoseconds it became an orphan
	// lockWaits wake F_SETLKW waiters when an inode's locks change.
	lockWaits map[uint64]*signal
	closed    bool

	// firstSeq is the oldest op-log seq still stored; only the trim loop
	// moves it.
	firstSeq atomic.Uint64

	// appended fires after every op-log entry written (the leader's
	// fetch long-polls wait on it).
	appended *signal

	// follower is set while this metaserver follows another's op log
	// (failover): its log must hold the leader's entries only, so no
	// txn commits, whatever asks (a Consul health change, a reaper).
	follower atomic.Bool
}

// openCore opens (creating on first start) the database under cfg.Dir.
func openCore(cfg coreConfig) (*core, error) {
	db, err := leveldb.OpenFile(filepath.Join(cfg.Dir, "meta"), &opt.Options{
		WriteBuffer:        16 << 20,
		BlockCacheCapacity: 32 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("metaserver: open db: %w", err)
	}
	c := &core{
		db:           db,
		log:          cfg.Logger,
		clock:        time.Now,
		ttl:          cfg.SessionTTL,
		readDirLimit: cfg.ReadDirLimit,
		tracker:      newTracker(cfg.HeartbeatTimeout, cfg.ISR),
		sessions:     make(map[string]*session),
		holders:      make(map[uint64]int),
		orphans:      make(map[uint64]int64),
		lockWaits:    make(map[uint64]*signal),
		appended:     newSignal(),
	}
	c.started = c.clock()
	c.syncer = newSyncer(c.syncMarker)
	if err := c.load(); err != nil {
		c.syncer.close()
		db.Close()
		return nil, err
	}
	return c, nil
}

// load reads the counters (initializing a fresh database with the root
// directory), the orphans, the known chunkservers and the op-log start.
func (c *core) load() error {
	v, ok, err := getOpt(c.db, keyMeta)
	if err != nil {
		return fmt.Errorf("metaserver: read counters: %w", err)
	}
	if !ok {
		if err := c.initRoot(); err != nil {
			return err
		}
	} else if c.ctr, err = decodeCounters(v); err != nil {
		return err
	}

	it := c.db.NewIterator(util.BytesPrefix([]byte{pOrphan}), nil)
	for it.Next() {
		k := it.Key()
		t, err := decodeI64(it.Value())
		if len(k) != 9 || err != nil {
			it.Release()
			return fmt.Errorf("%w: orphan key %x", ErrCorrupt, k)
		}
		c.orphans[binary.BigEndian.Uint64(k[1:])] = t
	}
	it.Release()
	if err := it.Error(); err != nil {
		return fmt.Errorf("metaserver: load orphans: %w", err)
	}

	it = c.db.NewIterator(util.BytesPrefix([]byte{pMember}), nil)
	for it.Next() {
		m, err := decodeMember(it.Value())
		if err != nil {
			it.Release()
			return err
		}
		c.tracker.restore(m)
	}
	it.Release()
	if err := it.Error(); err != nil {
		return fmt.Errorf("metaserver: load members: %w", err)
	}

	it = c.db.NewIterator(util.BytesPrefix([]byte{pISR}), nil)
	for it.Next() {
		k := it.Key()
		var rec isrRecord
		if len(k) != 5 || json.Unmarshal(it.Value(), &rec) != nil {
			it.Release()
			return fmt.Errorf("%w: in-sync set record %x", ErrCorrupt, k)
		}
		c.tracker.restoreISR(binary.BigEndian.Uint32(k[1:]), rec)
	}
	it.Release()
	if err := it.Error(); err != nil {
		return fmt.Errorf("metaserver: load in-sync sets: %w", err)
	}

	it = c.db.NewIterator(util.BytesPrefix([]byte{pLog}), nil)
	if it.First() && len(it.Key()) == 9 {
		c.firstSeq.Store(binary.BigEndian.Uint64(it.Key()[1:]))
	} else {
		c.firstSeq.Store(c.ctr.seq + 1)
	}
	it.Release()
	return it.Error()
}

func (c *core) initRoot() error {
	now := c.clock().UnixNano()
	root := &inode{Parent: wire.RootIno}
	root.Ino = wire.RootIno
	root.Mode = wire.ModeDir | 0o755
	root.Nlink = 2
	root.Atime, root.Mtime, root.Ctime = now, now, now
	root.Version = 1
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctr = counters{nextIno: wire.RootIno + 1, nextBlock: 1}
	t := c.begin("init")
	t.ctr.inodes = 1
	t.add(root)
	if err := t.commit(); err != nil {
		return fmt.Errorf("metaserver: create root: %w", err)
	}
	return nil
}

// close stops the syncer and closes the database. Idempotent.
func (c *core) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.syncer.close()
	return c.db.Close()
}

// health is nil while the database is open and answers a read.
func (c *core) health() error {
	if _, err := c.db.Get(keyMeta, nil); err != nil {
		return fmt.Errorf("metaserver: database: %w", err)
	}
	return nil
}

// syncMarker is the syncer's flush: a synced write of a tiny key. goleveldb
// fsyncs its journal, which holds every write that finished before.
func (c *core) syncMarker() error {
	var b leveldb.Batch
	b.Put(keySync, encodeI64(c.clock().UnixNano()))
	return c.db.Write(&b, &opt.WriteOptions{Sync: true})
}

// ---- transactions ----

// txn collects one op's changes into one batch. It is used with c.mu held
// from begin to commit; nothing reaches the database or the in-memory
// state before commit, so an op that fails part-way changes nothing.
type txn struct {
	c     *core
	op    string
	now   int64
	b     leveldb.Batch
	ctr   counters
	nodes []txNode

	orphanAdd []uint64
	orphanDel []uint64

	req string // request id of the change, recorded with it (dedupe.go)
}

// txNode is an inode loaded or created in a txn.
type txNode struct {
	n     *inode
	dirty bool // write at commit
	gone  bool // delete at commit
}

// begin starts a txn; c.mu must be held.
func (c *core) begin(op string) *txn {
	return &txn{c: c, op: op, now: c.clock().UnixNano(), ctr: c.ctr}
}

// inode returns the inode, loading it once per txn. A missing inode (or one
// deleted earlier in this txn) is ENOENT.
func (t *txn) inode(ino uint64) (*inode, error) {
	for _, x := range t.nodes {
		if x.n.Ino == ino {
			if x.gone {
				return nil, errNoEnt("inode %d", ino)
			}
			return x.n, nil
		}
	}
	n, err := loadInode(t.c.db, ino)
	if err != nil {
		return nil, err
	}
	t.nodes = append(t.nodes, txNode{n: n})
	return n, nil
}

// dir returns the inode if it is a directory: ENOENT or ENOTDIR otherwise.
func (t *txn) dir(ino uint64) (*inode, error) {
	n, err := t.inode(ino)
	if err != nil {
		return nil, err
	}
	if !n.IsDir() {
		return nil, wire.Errorf(wire.ErrNotDir, "inode %d is not a directory", ino)
	}
	return n, nil
}

// save marks a loaded inode to be written at commit.
func (t *txn) save(n *inode) {
	for i := range t.nodes {
		if t.nodes[i].n == n {
			t.nodes[i].dirty = true
			return
		}
	}
	t.nodes = append(t.nodes, txNode{n: n, dirty: true})
}

// add records a new inode.
func (t *txn) add(n *inode) {
	t.nodes = append(t.nodes, txNode{n: n, dirty: true})
}

// drop deletes an inode record at commit.
func (t *txn) drop(n *inode) {
	for i := range t.nodes {
		if t.nodes[i].n == n {
			t.nodes[i].gone = true
			return
		}
	}
	t.nodes = append(t.nodes, txNode{n: n, gone: true})
}

// newIno hands out the next inode number.
func (t *txn) newIno() uint64 {
	ino := t.ctr.nextIno
	t.ctr.nextIno++
	t.ctr.inodes++
	return ino
}

// lookup reads the dentry parent/name: (0, nil) when absent.
func (t *txn) lookup(parent uint64, name string) (uint64, error) {
	return lookupDentry(t.c.db, parent, name)
}

// queueBlock adds a block to the deletion queue and tombstones it. The
// queue entry goes once every member deleted the block; the tombstone
// stays, so a commit that arrives later (a writer slower than the
// collector) is refused instead of referencing bytes that are gone.
func (t *txn) queueBlock(id uint64, group uint32) {
	t.b.Put(keyQueue(id), encodeU32(group))
	t.b.Put(keyTomb(id), encodeI64(t.now))
	t.ctr.queued++
}

// commit writes the batch with the inode records, the counters and the
// op-log entry, then applies the in-memory side effects. c.mu must be held.
func (t *txn) commit() error {
	c := t.c
	if c.closed {
		return ErrClosed
	}
	if c.follower.Load() {
		return wire.Errorf(wire.ErrNotLeader, "metaserver follows another's op log: %s not written", t.op)
	}
	for _, x := range t.nodes {
		switch {
		case x.gone:
			t.b.Delete(keyInode(x.n.Ino))
		case x.dirty:
			t.b.Put(keyInode(x.n.Ino), encodeInode(x.n))
		}
	}
	if t.req != "" {
		t.b.Put(keyRequest(t.req), encodeI64(t.now))
		t.b.Put(keyReqTime(t.now, t.req), nil)
	}
	t.ctr.seq++
	t.b.Put(keyMeta, encodeCounters(t.ctr))
	entry := encodeLogEntry(t.now, t.op, t.b.Dump())
	t.b.Put(keyLog(t.ctr.seq), entry)
	if err := c.db.Write(&t.b, nil); err != nil {
		return ioError(t.op, err)
	}
	c.ctr = t.ctr
	c.appended.fire()
	for _, ino := range t.orphanDel {
		delete(c.orphans, ino)
	}
	for _, ino := range t.orphanAdd {
		c.orphans[ino] = t.now
	}
	return nil
}

// ---- reads shared by txns and read-only ops ----

func loadInode(r reader, ino uint64) (*inode, error) {
	v, ok, err := getOpt(r, keyInode(ino))
	if err != nil {
		return nil, ioError("read inode", err)
	}
	if !ok {
		return nil, errNoEnt("inode %d", ino)
	}
	n, err := decodeInode(ino, v)
	if err != nil {
		return nil, ioError("read inode", err)
	}
	return n, nil
}

// lookupDentry reads parent/name: (0, nil) when absent.
func lookupDentry(r reader, parent uint64, name string) (uint64, error) {
	v, ok, err := getOpt(r, keyDentry(parent, name))
	if err != nil {
		return 0, ioError("read dentry", err)
	}
	if !ok {
		return 0, nil
	}
	ino, err := decodeDentry(v)
	if err != nil {
		return 0, ioError("read dentry", err)
	}
	return ino, nil
}
