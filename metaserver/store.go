package metaserver

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/reelfs/reelfs/internal/wire"
)

// Key layout. Every integer in a key is big-endian so that keys of one
// prefix sort numerically and a prefix scan visits them in order.
//
//	i ino                 -> inode record (attrs + parent of a directory)
//	d parent name         -> dentry: child ino + type
//	s ino                 -> symlink target
//	x ino name            -> xattr value
//	c ino chunk-index     -> slice list (chunk.Encode)
//	b block-id            -> reverse index: ino + chunk index
//	q block-id            -> deletion queue: group
//	t block-id            -> tombstone: Unix nanoseconds the block was queued
//	                         for deletion; kept for good, so that no commit
//	                         ever brings the block back
//	o ino                 -> orphan: Unix nanoseconds of the last unlink
//	l seq                 -> op-log entry
//	g group member-id     -> chunkserver known to the tracker
//	m                     -> counters (next inode, next block id, last seq, ...)
//	k                     -> group-commit marker (written with Sync)
//	e epoch               -> first op-log seq written under that epoch
//	z                     -> present while a snapshot replaces the database
//	u request-id          -> reply of the op that request made
//	v time request-id     -> expiry index of the u records
//	y ino                 -> locks on the inode (JSON list of lockrange.Span)
const (
	pInode   = 'i'
	pDentry  = 'd'
	pSymlink = 's'
	pXattr   = 'x'
	pChunk   = 'c'
	pBlock   = 'b'
	pQueue   = 'q'
	pTomb    = 't'
	pOrphan  = 'o'
	pLog     = 'l'
	pMember  = 'g'
	pISR     = 'r' // group -> its in-sync set (JSON isrRecord)
	pMeta    = 'm'
	pSync    = 'k'
	pEpoch   = 'e' // epoch -> first op-log seq of that leader's term
	pResync  = 'z' // present while a snapshot replaces the database
	pRequest = 'u' // request id -> the reply of the op it made (exactly once)
	pReqTime = 'v' // time + request id: when each 'u' record expires
	pLocks   = 'y' // ino -> the inode's byte-range and flock locks (JSON)
)

// recVersion is the first byte of every fixed-layout record, so a later
// layout can be told apart.
const recVersion = 1

func key64(p byte, n uint64) []byte {
	k := make([]byte, 9)
	k[0] = p
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

func keyName(p byte, n uint64, name string) []byte {
	k := make([]byte, 9, 9+len(name))
	k[0] = p
	binary.BigEndian.PutUint64(k[1:], n)
	return append(k, name...)
}

func keyInode(ino uint64) []byte               { return key64(pInode, ino) }
func keyDentry(parent uint64, n string) []byte { return keyName(pDentry, parent, n) }
func keySymlink(ino uint64) []byte             { return key64(pSymlink, ino) }
func keyXattr(ino uint64, n string) []byte     { return keyName(pXattr, ino, n) }
func keyBlock(id uint64) []byte                { return key64(pBlock, id) }
func keyQueue(id uint64) []byte                { return key64(pQueue, id) }
func keyTomb(id uint64) []byte                 { return key64(pTomb, id) }
func keyOrphan(ino uint64) []byte              { return key64(pOrphan, ino) }
func keyLog(seq uint64) []byte                 { return key64(pLog, seq) }

func keyChunk(ino uint64, idx uint32) []byte {
	k := make([]byte, 13)
	k[0] = pChunk
	binary.BigEndian.PutUint64(k[1:], ino)
	binary.BigEndian.PutUint32(k[9:], idx)
	return k
}

func keyMember(group uint32, id string) []byte {
	k := make([]byte, 5, 5+len(id))
	k[0] = pMember
	binary.BigEndian.PutUint32(k[1:], group)
	return append(k, id...)
}

func keyISR(group uint32) []byte {
	k := make([]byte, 5)
	k[0] = pISR
	binary.BigEndian.PutUint32(k[1:], group)
	return k
}

var (
	keyMeta = []byte{pMeta}
	keySync = []byte{pSync}
)

// prefix64 is the range of every key p+n+...
func prefix64(p byte, n uint64) *util.Range { return util.BytesPrefix(key64(p, n)) }

// ---- inode records ----

// inode is an inode's stored state. Parent is kept for directories (the
// directory that holds its one name) so rename can refuse to move a
// directory below itself; it is 0 for other inodes.
type inode struct {
	wire.Attr
	Parent uint64
}

// inodeLen is the record length; records of inodeLenV1 predate Flags,
// those of inodeLenV2 predate Stored (wire.AttrStored tells whether it is
// kept).
const (
	inodeLen   = 1 + 5*4 + 6*8 + 4 + 8
	inodeLenV2 = 1 + 5*4 + 6*8 + 4
	inodeLenV1 = 1 + 5*4 + 6*8
)

func encodeInode(n *inode) []byte {
	b := make([]byte, inodeLen)
	b[0] = recVersion
	binary.BigEndian.PutUint32(b[1:], n.Mode)
	binary.BigEndian.PutUint32(b[5:], n.Nlink)
	binary.BigEndian.PutUint32(b[9:], n.Uid)
	binary.BigEndian.PutUint32(b[13:], n.Gid)
	binary.BigEndian.PutUint32(b[17:], n.Rdev)
	binary.BigEndian.PutUint64(b[21:], n.Size)
	binary.BigEndian.PutUint64(b[29:], uint64(n.Atime))
	binary.BigEndian.PutUint64(b[37:], uint64(n.Mtime))
	binary.BigEndian.PutUint64(b[45:], uint64(n.Ctime))
	binary.BigEndian.PutUint64(b[53:], n.Version)
	binary.BigEndian.PutUint64(b[61:], n.Parent)
	binary.BigEndian.PutUint32(b[69:], n.Flags)
	binary.BigEndian.PutUint64(b[73:], n.Stored)
	return b
}

func decodeInode(ino uint64, b []byte) (*inode, error) {
	if len(b) != inodeLen && len(b) != inodeLenV2 && len(b) != inodeLenV1 || b[0] != recVersion {
		return nil, fmt.Errorf("%w: inode %d: %d bytes", ErrCorrupt, ino, len(b))
	}
	n := &inode{}
	n.Ino = ino
	n.Mode = binary.BigEndian.Uint32(b[1:])
	n.Nlink = binary.BigEndian.Uint32(b[5:])
	n.Uid = binary.BigEndian.Uint32(b[9:])
	n.Gid = binary.BigEndian.Uint32(b[13:])
	n.Rdev = binary.BigEndian.Uint32(b[17:])
	n.Size = binary.BigEndian.Uint64(b[21:])
	n.Atime = int64(binary.BigEndian.Uint64(b[29:]))
	n.Mtime = int64(binary.BigEndian.Uint64(b[37:]))
	n.Ctime = int64(binary.BigEndian.Uint64(b[45:]))
	n.Version = binary.BigEndian.Uint64(b[53:])
	n.Parent = binary.BigEndian.Uint64(b[61:])
	if len(b) >= inodeLenV2 {
		n.Flags = binary.BigEndian.Uint32(b[69:])
	}
	if len(b) == inodeLen {
		n.Stored = binary.BigEndian.Uint64(b[73:])
	}
	return n, nil
}

// ---- dentries ----

// A dentry value is the child's inode number and its type bits (Mode>>12),
// so a listing could tell types apart without reading inodes.
func encodeDentry(ino uint64, mode uint32) []byte {
	b := make([]byte, 9)
	binary.BigEndian.PutUint64(b, ino)
	b[8] = byte(mode & wire.ModeType >> 12)
	return b
}

func decodeDentry(b []byte) (uint64, error) {
	if len(b) != 9 {
		return 0, fmt.Errorf("%w: dentry of %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// ---- reverse index and queue ----

func encodeBlockRef(ino uint64, idx uint32) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, ino)
	binary.BigEndian.PutUint32(b[8:], idx)
	return b
}

func decodeBlockRef(b []byte) (ino uint64, idx uint32, err error) {
	if len(b) != 12 {
		return 0, 0, fmt.Errorf("%w: block reference of %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:]), nil
}

func encodeU32(v uint32) []byte {
	return binary.BigEndian.AppendUint32(nil, v)
}

func decodeU32(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: %d bytes for a uint32", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

func encodeI64(v int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(v))
}

func decodeI64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: %d bytes for an int64", ErrCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// ---- counters ----

// counters are the persisted counters, rewritten by every batch. nextIno
// and nextBlock only grow, so inode numbers and block ids are never reused;
// seq is the last op-log sequence number.
type counters struct {
	nextIno   uint64 // next inode number to hand out
	nextBlock uint64 // block-id high-water mark: ids below it were leased
	seq       uint64 // last op-log seq written
	inodes    uint64 // inodes in use (orphans included)
	queued    uint64 // entries in the deletion queue
}

const countersLen = 1 + 5*8

func encodeCounters(c counters) []byte {
	b := make([]byte, countersLen)
	b[0] = recVersion
	binary.BigEndian.PutUint64(b[1:], c.nextIno)
	binary.BigEndian.PutUint64(b[9:], c.nextBlock)
	binary.BigEndian.PutUint64(b[17:], c.seq)
	binary.BigEndian.PutUint64(b[25:], c.inodes)
	binary.BigEndian.PutUint64(b[33:], c.queued)
	return b
}

func decodeCounters(b []byte) (counters, error) {
	if len(b) != countersLen || b[0] != recVersion {
		return counters{}, fmt.Errorf("%w: counters of %d bytes", ErrCorrupt, len(b))
	}
	return counters{
		nextIno:   binary.BigEndian.Uint64(b[1:]),
		nextBlock: binary.BigEndian.Uint64(b[9:]),
		seq:       binary.BigEndian.Uint64(b[17:]),
		inodes:    binary.BigEndian.Uint64(b[25:]),
		queued:    binary.BigEndian.Uint64(b[33:]),
	}, nil
}

// ---- op log ----

// An op-log entry is the version byte, the time of the op, the op name and
// the goleveldb batch of the change (Batch.Dump form, without the entry
// itself). A follower replays an entry with Batch.Load + Write: the log is
// physical, so replay needs none of the namespace logic.
func encodeLogEntry(now int64, op string, batch []byte) []byte {
	b := make([]byte, 0, 1+8+1+len(op)+len(batch))
	b = append(b, recVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(now))
	b = append(b, byte(len(op)))
	b = append(b, op...)
	return append(b, batch...)
}

// logEntry is a decoded op-log entry.
type logEntry struct {
	Time  int64
	Op    string
	Batch []byte
}

func decodeLogEntry(b []byte) (logEntry, error) {
	if len(b) < 10 || b[0] != recVersion || len(b) < 10+int(b[9]) {
		return logEntry{}, fmt.Errorf("%w: op-log entry of %d bytes", ErrCorrupt, len(b))
	}
	n := int(b[9])
	return logEntry{
		Time:  int64(binary.BigEndian.Uint64(b[1:])),
		Op:    string(b[10 : 10+n]),
		Batch: b[10+n:],
	}, nil
}

// ---- members ----

func encodeMember(m wire.Member) []byte {
	b := make([]byte, 0, 1+4+5*8+2+len(m.ID)+2+len(m.Addr))
	b = append(b, recVersion)
	b = binary.BigEndian.AppendUint32(b, m.Group)
	b = binary.BigEndian.AppendUint64(b, m.Capacity)
	b = binary.BigEndian.AppendUint64(b, m.Free)
	b = binary.BigEndian.AppendUint64(b, m.Used)
	b = binary.BigEndian.AppendUint64(b, m.Blocks)
	b = binary.BigEndian.AppendUint64(b, uint64(m.LastSeen))
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.ID)))
	b = append(b, m.ID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Addr)))
	return append(b, m.Addr...)
}

func decodeMember(b []byte) (wire.Member, error) {
	const fixed = 1 + 4 + 5*8
	bad := fmt.Errorf("%w: member record of %d bytes", ErrCorrupt, len(b))
	if len(b) < fixed+2 || b[0] != recVersion {
		return wire.Member{}, bad
	}
	m := wire.Member{
		Group:    binary.BigEndian.Uint32(b[1:]),
		Capacity: binary.BigEndian.Uint64(b[5:]),
		Free:     binary.BigEndian.Uint64(b[13:]),
		Used:     binary.BigEndian.Uint64(b[21:]),
		Blocks:   binary.BigEndian.Uint64(b[29:]),
		LastSeen: int64(binary.BigEndian.Uint64(b[37:])),
	}
	rest := b[fixed:]
	str := func() (string, bool) {
		if len(rest) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			return "", false
		}
		s := string(rest[2 : 2+n])
		rest = rest[2+n:]
		return s, true
	}
	var ok1, ok2 bool
	m.ID, ok1 = str()
	m.Addr, ok2 = str()
	if !ok1 || !ok2 || len(rest) != 0 {
		return wire.Member{}, bad
	}
	return m, nil
}

// ---- small db helpers ----

// getOpt reads key, reporting whether it exists.
func getOpt(r reader, key []byte) ([]byte, bool, error) {
	v, err := r.Get(key, nil)
	switch {
	case err == leveldb.ErrNotFound:
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return v, true, nil
}

// nowNano is the clock of record times.
func nowNano(t time.Time) int64 { return t.UnixNano() }
