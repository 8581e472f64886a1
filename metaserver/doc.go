// Package metaserver keeps the reelfs namespace and tracks the cluster: it
// owns inodes, directory entries, symlinks, xattrs and the slice lists of
// file chunks in goleveldb, hands out inode numbers and block ids, places
// new blocks on chunkserver groups, and collects the blocks nothing
// references any more. Clients talk to it with POST /v1/meta/{op} and the
// JSON types of internal/wire.
//
// # One batch per change
//
// Every change is one goleveldb batch built under one mutex (core.mu): the
// op reads what it needs, stages its writes in a txn, and commit adds the
// counters record (next inode, block-id high-water mark, last op-log seq,
// inode and queue counts) and an op-log entry `l`+seq holding the batch
// itself. A follower can therefore replay the log without any namespace
// logic, and a crash leaves either all of a change or none of it. Writes
// are not fsync'd by default: goleveldb has written its journal to the OS
// when Write returns, which survives kill -9. A request with Sync waits
// for the group commit (syncer): one goroutine performs a synced write of
// a marker key for each round of waiters, and a round is taken only after
// every write in it finished, so N concurrent fsyncs cost about two disk
// flushes. (goleveldb closes a full journal without syncing it; a power
// loss in the short window before its memtable reaches a table file can
// lose synced-by-a-later-marker writes of that journal. kill -9 cannot.)
//
// # Inodes: live -> orphan -> deleted
//
//	live     nlink > 0, reachable by at least one dentry.
//	orphan   nlink == 0 but open by a live session: unlinked (or renamed
//	         over) while open. The `o` key records it so a restart still
//	         knows. Reads and commits keep working through the inode number.
//	deleted  the inode record, its xattrs, symlink target and chunks are
//	         gone; its blocks are in the deletion queue.
//
// The last unlink of an inode nobody holds deletes it at once. An orphan is
// deleted by the release that drops its last open, by a keep-alive that no
// longer lists it, or by the reaper when its sessions expired. Sessions
// live in memory only: after a restart, persisted orphans wait one
// SessionTTL for their clients' keep-alives before the reaper takes them.
// An unlink naming a session this process has never heard of is trusted
// (the client holds the file and we restarted); that session is adopted
// and expires like any other if it stays silent.
//
// Directories keep a parent pointer in their inode record so rename can
// refuse to move a directory below itself, and carry nlink = 2 + number of
// subdirectories.
//
// # Blocks: leased -> uploaded -> committed -> queued -> deleted
//
//	leased     alloc handed out the id: it is below the high-water mark,
//	           which is persisted before the reply, so no id is reused,
//	           not even after a crash.
//	uploaded   a chunkserver holds the bytes; the metaserver does not know.
//	committed  a commit put it in a chunk's slice list and the reverse
//	           index `b` id -> (ino, chunk). A block belongs to exactly one
//	           chunk; commits that would share a block are refused.
//	queued     no kept slice references it any more (overwritten, truncated,
//	           its inode deleted) or it was uploaded and never committed
//	           within UploadGrace while no live session reported it as its
//	           upload: `q` id -> group, plus the tombstone `t` id, which is
//	           never removed. Commits of tombstoned blocks are refused, so a
//	           block never comes back, not even after its queue entry went.
//	deleted    every member of the group answered DELETE with 2xx or 404.
//
// Commits append slices in order (a later slice wins where they overlap)
// and compact the list with internal/chunk, so hidden slices and the
// blocks only they referenced leave in the same batch that hid them.
//
// # Tracker
//
// In the embedded (no Consul) mode chunkservers heartbeat here. Members
// are kept in memory with their last heartbeat; their identity (id,
// address, group) is persisted under `g` so groups survive a restart,
// unhealthy until they heartbeat again. With Config.Consul the tracker
// also follows Consul's checks of reelfs-chunk (consulhealth.go): a member
// is healthy only while its heartbeat is fresh, it reports itself healthy
// and its check passes, and a change of the passing set re-decides every
// group's in-sync set at once. consulHealthy, a pure function, says when
// an old or incomplete view of Consul counts (an unreachable agent: the
// last view for ConsulStale, then heartbeats only; a watch that just
// (re)connected: heartbeats only until every heartbeating member passes,
// at most ConsulGrace). Placement (place) is a pure
// function: the group with the most free space among those whose every
// healthy member can take the bytes, near-ties broken by load.
//
// # Background loops
//
// Run owns them all: the deletion-queue drain (every GCInterval, DELETEs
// in parallel, exponential backoff per failing block), the uncommitted
// upload scan (every UploadGCInterval), the session/orphan reaper and the
// op-log trim (keeps the last OpLogKeep entries).
package metaserver
