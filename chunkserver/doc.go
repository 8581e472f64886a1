// Package chunkserver is the reelfs block store daemon: immutable blocks on
// local disk, checked with CRC32C on every read, a binlog of local changes,
// an HTTP API (fasthttp) and a heartbeat to the tracker.
//
// # Layout of Config.Dir
//
//	Dir/LOCK                   flock held while a server runs on Dir
//	Dir/id                     the server id, random on first start
//	Dir/blocks/XX/YY/<id>      one file per block; <id> is wire.BlockName
//	Dir/binlog/<seq>.log       binlog segments, named by their first seq
//
// XX and YY are the lowest and second-lowest byte of the block id in hex.
// The metaserver hands out ids in increasing ranges, so consecutive blocks
// land in different directories and the 65,536 leaves fill evenly.
//
// # Block files
//
// A block file is the data followed by a trailer (little-endian):
//
//	data     n bytes (n <= wire.MaxBlockSize)
//	crcs     ceil(n/64 KiB) x uint32: CRC32C (Castagnoli) of each 64 KiB piece
//	footer   uint64 n | uint16 version (1) | uint16 flags (0)
//	         | uint32 CRC32C of crcs and the preceding footer bytes | "RFSB"
//
// The file size follows from n, so the startup scan sizes every block
// with a stat, and a reader finds the footer and the whole CRC table
// (at most 276 bytes) with one pread of the file's tail. A read of a byte
// range reads only the 64 KiB pieces that cover it and verifies each one
// against its CRC before any byte is returned; a mismatch is an error that
// matches wire.ErrChecksum and names the block, this server (ID@ADDR) and
// the damaged byte range. A trailer that does not decode (truncated or
// foreign file) is the same CHECKSUM error, also matching ErrTrailer.
// Wrong bytes are never served.
//
// # Read path
//
// A GET opens the block file, takes its trailer (from the cache, or one
// pread of the file's tail), resolves the Range against the trailer's
// length and reads only the 64 KiB pieces that cover it, checking each
// against its CRC before a byte leaves. The trailer is the authority for
// the length, so a damaged file answers CHECKSUM before any 416. (Reading
// the trailer and the data concurrently when the trailer is not cached
// was tried and measured no faster on this disk: 440-500 against 420-470
// µs for a cold 64 KiB range.)
//
// Decoded trailers are kept in a bounded LRU (Config.TrailerCache
// entries, default 65,536, about 350 bytes each), so a warm read does
// only the data pread. An entry is tied to the file it came from (device,
// inode and size, checked with an fstat after each open), so a file
// replaced by a rename, truncated or grown never meets an old trailer.
// Put and Delete drop the id's entry once the file changed, and a reader
// that decoded a trailer while that happened does not cache it (a
// per-stripe generation taken before the open). A read that finds a
// checksum mismatch with a cached trailer drops it. A PUT's comparison
// with the stored copy always reads the trailer from the file, so a
// retried PUT still finds and repairs a damaged trailer; until then,
// reads with the cached trailer keep serving data that matches the CRCs
// written with the block.
//
// # Write protocol
//
// A PUT is acknowledged only when the block survives a crash:
//
//  1. refuse it (NOSPACE, nothing written) if the file would leave less
//     than Config.Reserve free on the file system;
//  2. write data and trailer to Dir/blocks/XX/YY/.tmp-<id>-<random>;
//  3. fsync the file, then rename it to <id> (a leaf directory created
//     for it was fsynced into its parent before);
//  4. at the same time fsync the directory and append a put entry to the
//     binlog (which fsyncs the binlog), and wait for both;
//  5. add the block to the in-memory index, then answer 201 if both
//     succeeded. If either failed, the block is indexed anyway (it is on
//     disk under its name) and the PUT fails.
//
// The data is durable before its name exists, so no crash leaves a torn
// block under a final name. Step 4 runs its two fsyncs concurrently
// instead of one after the other, which saves a disk flush per PUT, at
// this price: after a crash, the binlog may hold a put entry for a block
// whose directory entry was lost. That PUT was never acknowledged (the
// directory fsync had not returned). Readers of the log (followers, and
// whatever ships it later) must therefore treat a put entry for a block
// that their source no longer has (ENOENT) as a block that was never
// written, not as damage or a lost block.
//
// Writers of one id are serialized (striped mutexes), so the existence
// check, the write and the binlog entry of a block happen in one order.
// Blocks are immutable: a PUT of a stored id with identical bytes answers
// 200 and changes nothing (a retry); different bytes answer EEXIST. A
// stored copy that fails its checksums is replaced by the new PUT, which
// is how a damaged block gets repaired. A client-sent X-Reelfs-Crc32c of
// the body is checked before anything is written (EINVAL on mismatch).
// DELETE unlinks the file, fsyncs the directory, logs a del entry.
//
// A crash between steps 2 and 3 leaves a temp file, which the next start
// removes. A crash during 4 may leave a stored block with no binlog entry
// (never acknowledged; followers that compare inventories find it) or,
// as said, a binlog entry with no block.
//
// # Binlog
//
// The binlog is an append-only log of fixed 40-byte records (seq, block
// id, time, size, op, CRC32C), split into segment files of up to 65,536
// records, so entry seq lives at a computed offset. It was chosen over a
// goleveldb because it needs nothing but appends, positional reads and
// whole-file deletes. Rules:
//
//   - Sequence numbers start at 1, grow by one per entry and never go
//     back: the newest segment is never trimmed, and on start the
//     sequence continues after the newest intact record.
//   - An entry is written, then fsynced before Append returns. Appends
//     that arrive during an fsync share the next one (group commit).
//   - Readers see only fsynced entries, so a follower never reads an
//     entry that a crash could take back and reuse.
//   - On start the newest segment is verified and cut at the first torn
//     record; segments that are not contiguous with the newest are dropped.
//   - Segments are deleted, oldest first, while the newer ones still hold
//     Config.BinlogKeep entries. First reports the oldest entry held; a
//     follower whose next seq is below First must resync by inventory.
//   - A failed write or fsync is sticky: the binlog and every PUT and
//     DELETE fail until restart, because after a failed fsync the kernel
//     may have dropped the dirty pages and a retry could report success
//     for lost data.
//
// GET /v1/binlog?from=S&limit=N&wait=10s is a blocking query in the style
// of Consul: it waits until an entry >= S is durable or the wait passes
// (capped at 5 minutes; shutdown ends it at once) and answers a
// wire.BinlogReply, possibly empty. A fetch that names its follower
// (&member=ID) acknowledges every entry below from.
//
// # Replication (with Config.Meta)
//
// The members of a group hold the same blocks. Each member is the source
// of its own binlog and a follower of every peer's (ship.go): one
// goroutine per peer long-polls the peer's binlog from a saved offset,
// copies each put block (a whole-block GET the peer verifies, then the
// same Put as a client's, logged in this member's binlog too, so blocks
// reach a lagging member even from a peer that is gone), applies each
// delete, and asks for the next entries: that next fetch is the ack.
// Offsets live in Dir/replica.json, written at most once a second (a
// crash re-applies at most a second; puts of blocks held are skipped). A
// follower with no offset for a peer, or whose offset is outside the
// peer's log (trimmed, or a new disk), resyncs by copying the peer's
// inventory, paced by ResyncRate, and then follows from the seq the peer
// had when the listing began.
//
// The source side (acks.go) records each follower's ack and when it was
// last caught up (Kafka's rule: a fetch past the source's last seq as of
// the follower's previous fetch), reports both in heartbeats, and makes
// a PUT wait until every other member of the in-sync set has acked its
// entry (quorumState). The in-sync set and MinCopies come from the
// tracker's heartbeat reply; the tracker alone changes the set. A member
// outside the set, or a set below MinCopies, answers NOSPACE, so the
// client places the block elsewhere; a wait past AckTimeout answers
// UNAVAILABLE. While PUTs wait, heartbeats go every 500 ms so a follower
// the tracker dropped stops holding them.
//
// Damage: a GET that finds a checksum mismatch queues a repair, and the
// scrubber (scrub.go) re-verifies every block at ScrubRate with the
// trailer read from the file; a damaged copy is replaced by a good one
// from a peer (Put replaces a copy that fails its checksums). Deleted ids
// are remembered (a bounded FIFO) so a peer that has not applied a delete
// yet cannot bring the block back.
//
// # HTTP API
//
// The endpoints are those of internal/wire: PUT/GET/HEAD/DELETE
// /v1/block/{id}, GET /v1/blocks, GET /v1/binlog, GET /v1/status, GET
// /v1/health and GET /metrics. GET takes one Range (bytes=a-b, a- or -n; 206 with
// Content-Range, 416 when unsatisfiable, 400 for several ranges). PUT
// answers 201 for a new block and 200 for an identical retry; DELETE 204.
// GET /v1/blocks?after=ID&limit=N&before=UNIXNANO lists the inventory in
// id order (decimal numbers; limit defaults to 1000, at most 10000; before
// keeps blocks last written earlier, for the collector of uncommitted
// uploads). With Config.Secret set every request but /metrics and
// /v1/health must carry it (401 otherwise). /v1/health is the check
// Consul runs (with Config.Consul, Run registers reelfs-chunk tagged
// group-N with the member id in Meta, and deregisters when it ends): "ok",
// or 503 "unhealthy" when the binlog failed or statfs fails, the same
// conditions that make a heartbeat report the member unhealthy. Errors are wire.ReplyError bodies; bad ids, ranges
// and query parameters are 400, unknown or repeated parameters too, wrong
// methods 405, oversized bodies 413. Block GETs are read into pooled 4 MiB
// buffers and written from there without another copy. The load reported
// to the tracker counts block requests in flight only, not long-polls.
//
// # Heartbeat
//
// With Config.Meta set, Run posts a wire.Heartbeat to the tracker at once
// and every Config.HeartbeatEvery: id, advertised address, group, disk
// capacity, free space above the reserve, used bytes, blocks, block
// requests in flight, and the newest binlog seq. Failures are retried on
// the next tick and logged only when the state changes.
//
// # Lifecycle
//
// New validates the Config, locks Dir, loads or creates the id, binds the
// listener (Addr is known at once), opens the binlog and scans the store.
// Run serves until its context ends, then ends long-polls, lets in-flight
// requests finish for up to 10 s, closes everything and returns after its
// goroutines stop. Close releases a Server that never ran.
package chunkserver
