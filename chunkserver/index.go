package chunkserver

import "sort"

// blockMeta is what the in-memory index keeps per stored block.
type blockMeta struct {
	id    uint64
	mtime int64 // Unix nanoseconds of the block file's last write
	size  uint32
}

// bucketMax bounds the entries of one index bucket: inserts move at most
// this many entries, and the bucket list stays 1/bucketMax of the blocks.
const bucketMax = 512

// index is the inventory of the store in id order: a list of sorted
// buckets, each non-empty and holding ids below those of the next. It is a
// two-level B-tree in spirit: lookups are two binary searches, inserts and
// deletes move at most bucketMax entries, and a scan from any id is
// sequential. Ids come from leased ranges and mostly grow, so most inserts
// append to the last bucket. The index is not safe for concurrent use; the
// store guards it with its mutex.
type index struct {
	buckets [][]blockMeta
	count   uint64 // blocks
	used    uint64 // data bytes of all blocks
}

// locate returns the bucket that holds id or where id belongs, and the
// position in that bucket.
func (x *index) locate(id uint64) (b, i int, found bool) {
	if len(x.buckets) == 0 {
		return 0, 0, false
	}
	b = sort.Search(len(x.buckets), func(j int) bool {
		bk := x.buckets[j]
		return bk[len(bk)-1].id >= id
	})
	if b == len(x.buckets) {
		b-- // beyond every id: belongs at the end of the last bucket
	}
	bk := x.buckets[b]
	i = sort.Search(len(bk), func(j int) bool { return bk[j].id >= id })
	return b, i, i < len(bk) && bk[i].id == id
}

// get returns the entry of id.
func (x *index) get(id uint64) (blockMeta, bool) {
	b, i, ok := x.locate(id)
	if !ok {
		return blockMeta{}, false
	}
	return x.buckets[b][i], true
}

// put inserts or replaces the entry of m.id.
func (x *index) put(m blockMeta) {
	if len(x.buckets) == 0 {
		x.buckets = [][]blockMeta{{m}}
		x.count, x.used = 1, uint64(m.size)
		return
	}
	b, i, ok := x.locate(m.id)
	bk := x.buckets[b]
	if ok {
		x.used += uint64(m.size) - uint64(bk[i].size)
		bk[i] = m
		return
	}
	bk = append(bk, blockMeta{})
	copy(bk[i+1:], bk[i:])
	bk[i] = m
	x.count++
	x.used += uint64(m.size)
	if len(bk) <= bucketMax {
		x.buckets[b] = bk
		return
	}
	// Split in two fresh halves so neither aliases the other's array.
	half := len(bk) / 2
	lo := append(make([]blockMeta, 0, bucketMax), bk[:half]...)
	hi := append(make([]blockMeta, 0, bucketMax), bk[half:]...)
	x.buckets = append(x.buckets, nil)
	copy(x.buckets[b+2:], x.buckets[b+1:])
	x.buckets[b], x.buckets[b+1] = lo, hi
}

// remove deletes the entry of id and returns it.
func (x *index) remove(id uint64) (blockMeta, bool) {
	b, i, ok := x.locate(id)
	if !ok {
		return blockMeta{}, false
	}
	bk := x.buckets[b]
	m := bk[i]
	copy(bk[i:], bk[i+1:])
	bk = bk[:len(bk)-1]
	x.count--
	x.used -= uint64(m.size)
	if len(bk) == 0 {
		x.buckets = append(x.buckets[:b], x.buckets[b+1:]...)
	} else {
		x.buckets[b] = bk
	}
	return m, true
}

// scan calls fn for every entry with an id above after, in id order, until
// fn returns false.
func (x *index) scan(after uint64, fn func(blockMeta) bool) {
	if after == ^uint64(0) {
		return
	}
	b, i, _ := x.locate(after + 1)
	for ; b < len(x.buckets); b, i = b+1, 0 {
		for _, m := range x.buckets[b][i:] {
			if !fn(m) {
				return
			}
		}
	}
}
