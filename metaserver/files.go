package metaserver

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/reelfs/reelfs/internal/chunk"
	"github.com/reelfs/reelfs/internal/wire"
)

const (
	// maxFileSize is the end of the last chunk an index can name.
	maxFileSize = uint64(1<<32) * wire.ChunkSize
	// maxAlloc is the most block ids one alloc leases.
	maxAlloc = 4096
	// maxCommitSlices bounds the slices of one commit.
	maxCommitSlices = 1 << 16
)

// ---- setattr and truncation ----

const setKnown = wire.SetMode | wire.SetUid | wire.SetGid | wire.SetSize | wire.SetAtime |
	wire.SetMtime | wire.SetAtimeNow | wire.SetMtimeNow | wire.SetCtime

// setAttr applies the attributes named by req.Valid. With Sync the reply
// waits for a flush covering the change.
func (c *core) setAttr(ctx context.Context, req *wire.SetAttrReq) (wire.Attr, error) {
	if req.Valid&^setKnown != 0 {
		return wire.Attr{}, errInval("setattr valid bits %#x", req.Valid)
	}
	if req.Valid&wire.SetSize != 0 && req.Size > maxFileSize {
		return wire.Attr{}, errInval("size %d is past the largest file", req.Size)
	}
	attr, err := c.setAttrLocked(ctx, req)
	if err == nil {
		err = c.durable(ctx, req.Sync)
	}
	if err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

// durable returns, when sync is set, only after a synced write that
// covers every change made so far (the group commit).
func (c *core) durable(ctx context.Context, sync bool) error {
	if !sync {
		return nil
	}
	if err := c.syncer.wait(ctx); err != nil {
		return ioError("sync", err)
	}
	return nil
}

func (c *core) setAttrLocked(ctx context.Context, req *wire.SetAttrReq) (wire.Attr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpSetAttr)
	t.tag(ctx)
	n, err := t.inode(req.Ino)
	if err != nil {
		return wire.Attr{}, err
	}
	v := req.Valid
	if v == 0 {
		return n.Attr, nil
	}
	if v&wire.SetSize != 0 {
		switch {
		case n.IsDir():
			return wire.Attr{}, wire.Errorf(wire.ErrIsDir, "truncate of directory %d", n.Ino)
		case !n.IsRegular():
			return wire.Attr{}, errInval("truncate of inode %d of mode %o", n.Ino, n.Mode)
		}
		if req.Size < n.Size {
			freed, err := t.truncate(n.Ino, req.Size)
			if err != nil {
				return wire.Attr{}, err
			}
			n.Stored -= min(n.Stored, freed)
		}
		n.Size = req.Size
		n.Version++
		n.Mtime = t.now
	}
	if v&wire.SetMode != 0 {
		n.Mode = n.Mode&wire.ModeType | req.Mode&wire.ModePerm
	}
	if v&wire.SetUid != 0 {
		n.Uid = req.Uid
	}
	if v&wire.SetGid != 0 {
		n.Gid = req.Gid
	}
	switch {
	case v&wire.SetAtimeNow != 0:
		n.Atime = t.now
	case v&wire.SetAtime != 0:
		n.Atime = req.Atime
	}
	switch {
	case v&wire.SetMtimeNow != 0:
		n.Mtime = t.now
	case v&wire.SetMtime != 0:
		n.Mtime = req.Mtime
	}
	n.Ctime = t.now
	if v&wire.SetCtime != 0 {
		n.Ctime = req.Ctime
	}
	t.save(n)
	if err := t.commit(); err != nil {
		return wire.Attr{}, err
	}
	return n.Attr, nil
}

// truncate trims the chunks of ino to size bytes: chunks wholly past size
// go, the chunk holding the new end keeps only its slices' bytes before
// it. Blocks no longer referenced go to the deletion queue. It returns
// how many stored bytes (wire.Attr.Stored) went.
func (t *txn) truncate(ino, size uint64) (freed uint64, err error) {
	first := size / wire.ChunkSize // the chunk holding the new end
	if first > 1<<32-1 {
		return 0, nil
	}
	rng := prefix64(pChunk, ino)
	rng.Start = keyChunk(ino, uint32(first))
	it := t.c.db.NewIterator(rng, nil)
	defer it.Release()
	for it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 13 {
			return freed, ioError("truncate", errCorruptf("chunk key %x", k))
		}
		idx := binary.BigEndian.Uint32(k[9:])
		start := uint64(idx) * wire.ChunkSize
		list, err := chunk.Decode(v)
		if err != nil {
			return freed, ioError("truncate", err)
		}
		if start >= size {
			freed += chunk.Stored(list)
			if err := t.freeChunk(k, v); err != nil {
				return freed, err
			}
			continue
		}
		kept, dropped := chunk.Truncate(list, uint32(size-start))
		freed += chunk.Stored(list) - chunk.Stored(kept)
		t.release(list, dropped)
		if len(kept) == 0 {
			t.b.Delete(append([]byte(nil), k...))
		} else {
			t.b.Put(append([]byte(nil), k...), chunk.Encode(kept))
		}
	}
	return freed, ioError("truncate", it.Error())
}

// freeChunk deletes a chunk and queues all its blocks.
func (t *txn) freeChunk(key, value []byte) error {
	list, err := chunk.Decode(value)
	if err != nil {
		return ioError("free chunk", err)
	}
	ids := make([]uint64, 0, len(list))
	for _, s := range list {
		if s.ID != 0 && !slices.Contains(ids, s.ID) {
			ids = append(ids, s.ID)
		}
	}
	t.release(list, ids)
	t.b.Delete(append([]byte(nil), key...))
	return nil
}

// release removes dropped blocks from the reverse index and queues them for
// deletion, each with its group as list records it.
func (t *txn) release(list []wire.Slice, dropped []uint64) {
	for _, id := range dropped {
		var group uint32
		for _, s := range list {
			if s.ID == id {
				group = s.Group
				break
			}
		}
		t.b.Delete(keyBlock(id))
		t.queueBlock(id, group)
	}
}

// ---- chunks ----

func (c *core) readChunk(_ context.Context, req *wire.ReadChunkReq) (wire.ReadChunkReply, error) {
	snap, err := c.db.GetSnapshot()
	if err != nil {
		return wire.ReadChunkReply{}, ioError("readchunk", err)
	}
	defer snap.Release()
	n, err := loadInode(snap, req.Ino)
	if err != nil {
		return wire.ReadChunkReply{}, err
	}
	if err := checkRegular(n); err != nil {
		return wire.ReadChunkReply{}, err
	}
	v, _, err := getOpt(snap, keyChunk(req.Ino, req.Index))
	if err != nil {
		return wire.ReadChunkReply{}, ioError("readchunk", err)
	}
	list, err := chunk.Decode(v)
	if err != nil {
		return wire.ReadChunkReply{}, ioError("readchunk", err)
	}
	if list == nil {
		list = []wire.Slice{}
	}
	return wire.ReadChunkReply{Version: n.Version, Slices: list}, nil
}

func checkRegular(n *inode) error {
	switch {
	case n.IsDir():
		return wire.Errorf(wire.ErrIsDir, "inode %d is a directory", n.Ino)
	case !n.IsRegular():
		return errInval("inode %d of mode %o is not a regular file", n.Ino, n.Mode)
	}
	return nil
}

// commit appends uploaded slices to their chunks. Slices hidden by later
// ones are dropped and blocks no kept slice references go to the deletion
// queue; new blocks enter the reverse index. The file grows to req.Size
// (and at least to the end of every committed slice, so no data ever lies
// past the size). One batch; with Sync the reply waits for a flush.
func (c *core) commit(ctx context.Context, req *wire.CommitReq) (wire.Attr, error) {
	if len(req.Slices) > maxCommitSlices {
		return wire.Attr{}, errInval("commit of %d slices", len(req.Slices))
	}
	if req.Size > maxFileSize {
		return wire.Attr{}, errInval("size %d is past the largest file", req.Size)
	}
	for i, s := range req.Slices {
		if s.ID == 0 {
			return wire.Attr{}, errInval("slice %d: block id 0", i)
		}
		if err := chunk.Check(s.Slice); err != nil {
			return wire.Attr{}, errInval("slice %d: %v", i, err)
		}
	}
	attr, err := c.commitLocked(ctx, req)
	if err == nil {
		err = c.durable(ctx, req.Sync)
	}
	if err != nil {
		return wire.Attr{}, err
	}
	return attr, nil
}

func (c *core) commitLocked(ctx context.Context, req *wire.CommitReq) (wire.Attr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpCommit)
	t.tag(ctx)
	chunkOf := make(map[uint64]uint32, len(req.Slices))
	for i, s := range req.Slices {
		if idx, ok := chunkOf[s.ID]; ok && idx != s.Index {
			return wire.Attr{}, errInval("slice %d: block %d in chunks %d and %d", i, s.ID, idx, s.Index)
		}
		chunkOf[s.ID] = s.Index
		if s.ID >= t.ctr.nextBlock {
			return wire.Attr{}, errInval("slice %d: block %d was never leased", i, s.ID)
		}
		if !c.tracker.known(s.Group) {
			return wire.Attr{}, errInval("slice %d: unknown group %d", i, s.Group)
		}
	}
	n, err := t.inode(req.Ino)
	if err != nil {
		return wire.Attr{}, err
	}
	if err := checkRegular(n); err != nil {
		return wire.Attr{}, err
	}
	size := max(n.Size, req.Size)
	// Group by chunk, keeping commit order inside each chunk.
	byChunk := make(map[uint32][]wire.Slice)
	var order []uint32
	for _, s := range req.Slices {
		if _, ok := byChunk[s.Index]; !ok {
			order = append(order, s.Index)
		}
		byChunk[s.Index] = append(byChunk[s.Index], s.Slice)
		size = max(size, uint64(s.Index)*wire.ChunkSize+uint64(s.Pos)+uint64(s.Len))
	}
	var before, after uint64
	for _, idx := range order {
		b, a, err := t.commitChunk(n.Ino, idx, byChunk[idx])
		if err != nil {
			return wire.Attr{}, err
		}
		before, after = before+b, after+a
	}
	n.Stored = n.Stored - min(n.Stored, before) + after
	mtime := req.Mtime
	if mtime == 0 {
		mtime = t.now
	}
	n.Size = size
	n.Mtime, n.Ctime = mtime, mtime
	n.Version++
	t.save(n)
	if err := t.commit(); err != nil {
		return wire.Attr{}, err
	}
	return n.Attr, nil
}

// commitChunk appends slices to chunk idx of ino and compacts it. It
// returns the chunk's stored bytes before and after.
func (t *txn) commitChunk(ino uint64, idx uint32, add []wire.Slice) (before, after uint64, err error) {
	key := keyChunk(ino, idx)
	v, _, err := getOpt(t.c.db, key)
	if err != nil {
		return 0, 0, ioError("commit", err)
	}
	old, err := chunk.Decode(v)
	if err != nil {
		return 0, 0, ioError("commit", err)
	}
	ref := encodeBlockRef(ino, idx)
	var fresh []uint64 // ids this commit brings into the chunk
	for _, s := range add {
		if slices.ContainsFunc(old, func(o wire.Slice) bool { return o.ID == s.ID }) || slices.Contains(fresh, s.ID) {
			continue
		}
		have, ok, err := getOpt(t.c.db, keyBlock(s.ID))
		if err != nil {
			return 0, 0, ioError("commit", err)
		}
		if ok && string(have) != string(ref) {
			return 0, 0, errInval("block %d is already part of another chunk", s.ID)
		}
		gone, err := t.c.deleted(s.ID)
		if err != nil {
			return 0, 0, err
		}
		if gone {
			return 0, 0, errInval("block %d was deleted (freed, or collected as an upload left uncommitted): "+
				"it can never be committed; write the data again", s.ID)
		}
		fresh = append(fresh, s.ID)
	}
	all := append(old[:len(old):len(old)], add...)
	kept, dropped := chunk.Compact(all)
	for _, id := range fresh {
		if !slices.Contains(dropped, id) {
			t.b.Put(keyBlock(id), ref)
		}
	}
	t.release(all, dropped)
	t.b.Put(key, chunk.Encode(kept))
	return chunk.Stored(old), chunk.Stored(kept), nil
}

// deleted reports whether block id was ever queued for deletion: its
// tombstone, or (for blocks queued before tombstones existed) its queue
// entry.
func (c *core) deleted(id uint64) (bool, error) {
	for _, k := range [][]byte{keyTomb(id), keyQueue(id)} {
		_, ok, err := getOpt(c.db, k)
		if err != nil {
			return false, ioError("read tombstone", err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// ---- leases ----

// alloc leases req.Count block ids and places req.Bytes of data. The new
// high-water mark is in the same batch as the op-log entry, and the reply
// waits for a synced write covering it (the group commit), so ids are
// never handed out twice, across restarts and power losses included: an
// unsynced mark could be lost while blocks already exist under its ids.
// A client leases many ids at once, so the flush is rare.
func (c *core) alloc(ctx context.Context, req *wire.AllocReq) (wire.AllocReply, error) {
	if req.Count < 1 || req.Count > maxAlloc {
		return wire.AllocReply{}, errInval("alloc of %d ids (want 1..%d)", req.Count, maxAlloc)
	}
	if req.Bytes < 0 {
		return wire.AllocReply{}, errInval("alloc of %d bytes", req.Bytes)
	}
	now := c.clock()
	p, err := place(c.tracker.groups(now), uint64(req.Bytes), c.tracker.rotate.Add(1))
	if err != nil {
		if errors.Is(err, wire.ErrNoSpace) && now.Sub(c.startedAt()) < c.tracker.timeout && c.tracker.unheard() {
			// Just started or took over: the chunkservers have not all
			// heartbeated here yet. Ask the client to retry, not to fail.
			return wire.AllocReply{}, wire.Errorf(wire.ErrUnavailable, "metaserver started %v ago; waiting for chunkserver heartbeats: %v",
				now.Sub(c.startedAt()).Round(time.Millisecond), err)
		}
		return wire.AllocReply{}, err
	}
	first, err := c.leaseLocked(req.Count)
	if err == nil {
		err = c.durable(ctx, true)
	}
	if err != nil {
		return wire.AllocReply{}, err
	}
	return wire.AllocReply{First: first, Count: req.Count, Group: p.Group, Members: p.Members}, nil
}

// leaseLocked moves the high-water mark past n more ids and returns the
// first of them.
func (c *core) leaseLocked(n int) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin(wire.OpAlloc)
	first := t.ctr.nextBlock
	t.ctr.nextBlock += uint64(n)
	if err := t.commit(); err != nil {
		return 0, err
	}
	return first, nil
}

// highWater is the block-id high-water mark: every id below it was leased.
func (c *core) highWater() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctr.nextBlock
}
