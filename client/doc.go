// Package client is the reelfs Go SDK: namespace calls to the metaserver
// and the data path of files to and from the chunkservers. fusefs, httpd
// and cmd are built on it.
//
// # Data model in one paragraph
//
// A file is a sequence of 64 MiB chunks; a chunk is an ordered list of
// slices, each naming a run of bytes of an immutable block (at most
// BlockSize, 4 MiB) on a group of chunkservers. Where slices overlap the
// later one wins; bytes no slice covers are a hole and read as zeros.
//
// # Write buffer
//
// Every File of one inode in a Client shares one inode state: the local
// size and mtime and a write buffer. The write buffer keeps, per chunk, the
// ordered list of slices written since the last commit, in the same
// "later wins" order as a committed list. A write that continues the end
// of an in-memory slice (and that no later slice overlaps) extends it;
// any other write starts a new slice, so a seek-back write (an MP4 muxer
// patching its header) is a small new slice and the sequential stream
// around it keeps growing its own. Slices never cross a chunk boundary
// and never grow past BlockSize: each becomes one block.
//
// A slice is in one of three states:
//
//	memory ──(reaches BlockSize, flush, or backpressure)──▶ uploading
//	uploading ──(PUT ok)──▶ uploaded (memory released, only id/group/off kept)
//	uploading ──(PUT failed after retries)──▶ memory (error recorded)
//	uploaded ──(commit ok)──▶ gone from the buffer (now in the chunk list)
//
// A full slice is uploaded in the background at once (at most
// Config.Uploads PUTs in flight per Client). A writer blocks while more
// than Config.WriteBuffer bytes of its inode are not uploaded yet; if
// nothing is in flight then, it uploads every in-memory slice itself. A
// writer also blocks (until its context ends) while Config.DirtyBytes of
// all inodes together are not uploaded; it then starts the uploads of
// every open inode's in-memory slices, so idle open files cannot pin the
// memory that active writers wait for.
// Small slices of one chunk are packed into one block (each slice keeps
// its own offset in it), so random small writes cost few PUTs.
//
// Flush (and Sync, Close, Truncate) uploads every in-memory slice in
// parallel and sends one commit with the slices in write order, the local
// size and the local mtime. Only a prefix of each chunk's list can be
// committed: a newer slice committed before an older one still in memory
// would lose to it later. An inode with more than ~1,000 uploaded slices
// or 256 MiB uploaded but uncommitted commits on its own while written.
//
// Block ids come from leases (64 ids per OpAlloc) that carry a placement:
// a group and its members, preferred first. A PUT that fails is retried,
// then sent to the next member; a member that is full (NOSPACE) drops the
// lease so the next try is placed afresh; a full cluster is
// wire.ErrNoSpace.
//
// # Reads
//
// A read resolves its range chunk by chunk with chunk.Resolve over the
// committed slice list followed by the write buffer's slices: committed
// bytes, then uploaded-but-uncommitted blocks, then bytes still in
// memory, each in write order. Committed slice lists are cached per chunk
// with the inode version they were read at; a reader uses an entry only
// if it is at least as new as the version its inode was opened at or last
// committed by this client.
//
// Block bytes live in an LRU cache of 256 KiB pages keyed by block id and
// page, bounded by Config.CacheBytes. Blocks are immutable, so the cache
// never needs invalidation. A handle whose reads follow each other fetches
// whole blocks and prefetches the next Config.Prefetch blocks in the
// background; a read after a seek waits only for the pages it needs, one
// ranged GET per contiguous run, while the pages up to 1 MiB past its
// start are fetched beside it (the read-around), so a player's seek costs
// one small fetch. Concurrent fetches of a page are merged. A chunkserver
// named in Config.Local (one in this process) is read with a function
// call instead of a GET, with the same checks. A block is read from its
// group's members in turn; when none can serve it the error names the
// block and every server tried and matches wire.ErrChecksum or
// wire.ErrIO.
//
// # Consistency
//
// Close-to-open: Create and Open read the inode's current attributes from
// the metaserver, and nothing written is visible to other clients before
// its commit. Within one Client every handle sees every write at once,
// and GetAttr, Lookup and ReadDir report the local size and mtime of
// inodes with pending writes.
//
// # Sessions
//
// A Client has a random session id. Create registers the open inside the
// create call; Open calls OpOpen. A goroutine sends the set of inodes open
// in the Client every Config.SessionEvery; the metaserver replaces the
// session's open set with it, so closing a clean file needs no call at
// all (create plus close is one round trip). A file this Client unlinks
// (or renames over) while holding it open stays readable and writable as
// an orphan; its last Close sends the open set at once, so the metaserver
// reclaims its blocks without waiting for the next tick. Keep-alives and
// opens are ordered by a lock so a keep-alive never drops an open that
// raced with it.
//
// # Errors and retries
//
// Metaserver calls retry transient errors (unreachable, overloaded, not
// the leader) with exponential backoff until Config.RetryTimeout; other
// errors return at once and match the wire sentinels (errors.Is(err,
// wire.ErrNotFound), ...). A retried call that had in fact been applied
// may report what the retry found (EEXIST for an exclusive create,
// ENOENT for an unlink), as with NFS.
package client
