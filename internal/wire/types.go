// Package wire holds the types, paths and error codes that cluster peers
// exchange: the one protocol shared by metaserver, chunkserver and client.
package wire

// Sizes of the data model.
const (
	ChunkSize    = 64 << 20 // a file is a sequence of chunks of this size
	MaxBlockSize = 4 << 20  // blocks are immutable and at most this long
	CRCBlock     = 64 << 10 // chunkservers keep one CRC32C per this many bytes
	RootIno      = 1        // the inode of "/"
	MaxNameLen   = 255      // longest file name
)

// Mode type bits (the S_IF* values of Linux) so that every package agrees
// without importing syscall.
const (
	ModeType    = 0o170000
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModeFIFO    = 0o010000
	ModeSocket  = 0o140000
	ModeChar    = 0o020000
	ModeBlock   = 0o060000
	ModePerm    = 0o7777 // permission, setuid, setgid and sticky bits
)

// Attr is the attribute set of an inode. Times are Unix nanoseconds.
// Version increases on every change of the file's data (commit, truncate),
// so a client can tell whether its cached slices and pages are current.
type Attr struct {
	Ino     uint64 `json:"i"`
	Mode    uint32 `json:"m"`
	Nlink   uint32 `json:"n"`
	Uid     uint32 `json:"u"`
	Gid     uint32 `json:"g"`
	Rdev    uint32 `json:"r,omitempty"`
	Size    uint64 `json:"s"`
	Atime   int64  `json:"at"`
	Mtime   int64  `json:"mt"`
	Ctime   int64  `json:"ct"`
	Version uint64 `json:"v"`
	Flags   uint32 `json:"f,omitempty"` // Attr* bits
	// Stored is the number of the file's bytes that are in blocks (not
	// holes), when Flags has AttrStored: what st_blocks reports.
	Stored uint64 `json:"sb,omitempty"`
}

// Attr flags.
const (
	// AttrHasXattrs says the inode has at least one extended attribute, so
	// a mount can answer "no such attribute" without asking (ls -l asks
	// for two of them on every file).
	AttrHasXattrs uint32 = 1 << iota
	// AttrStored says Stored is kept for this file. Files created before
	// the count existed lack it; their st_blocks follows the size.
	AttrStored
)

// IsDir reports whether the inode is a directory.
func (a Attr) IsDir() bool { return a.Mode&ModeType == ModeDir }

// IsRegular reports whether the inode is a regular file.
func (a Attr) IsRegular() bool { return a.Mode&ModeType == ModeRegular }

// IsSymlink reports whether the inode is a symbolic link.
func (a Attr) IsSymlink() bool { return a.Mode&ModeType == ModeSymlink }

// Slice is a run of bytes of one chunk stored in (part of) one block. In a
// chunk's slice list a later slice wins where slices overlap. ID 0 is a
// hole: the range reads as zeros.
type Slice struct {
	Pos   uint32 `json:"p"`           // offset of the slice in its chunk
	Len   uint32 `json:"l"`           // bytes in the slice
	ID    uint64 `json:"id"`          // block id; 0 for a hole
	Group uint32 `json:"g,omitempty"` // group holding the block
	Off   uint32 `json:"o,omitempty"` // offset of the slice's first byte in the block
	Size  uint32 `json:"s,omitempty"` // length of the whole block
}

// ChunkSlice is a slice to commit into chunk Index of a file.
type ChunkSlice struct {
	Index uint32 `json:"c"`
	Slice
}

// DirEntry is one entry of a directory listing, with the entry's attributes.
type DirEntry struct {
	Name string `json:"n"`
	Attr Attr   `json:"a"`
}

// StatFS describes the capacity of the cluster.
type StatFS struct {
	Total  uint64 `json:"total"`  // bytes of capacity on all chunkservers
	Free   uint64 `json:"free"`   // bytes free (after each server's reserve)
	Files  uint64 `json:"files"`  // inodes in use
	BSize  uint32 `json:"bsize"`  // preferred I/O size
	Groups int    `json:"groups"` // groups with at least one healthy member
}

// SetAttr valid bits: which fields of a SetAttrReq apply.
const (
	SetMode uint32 = 1 << iota
	SetUid
	SetGid
	SetSize
	SetAtime
	SetMtime
	SetAtimeNow
	SetMtimeNow
	SetCtime
)

// Rename flags, as renameat2(2).
const (
	RenameNoReplace uint32 = 1
	RenameExchange  uint32 = 2
)

// Xattr set flags, as setxattr(2).
const (
	XattrCreate  uint32 = 1
	XattrReplace uint32 = 2
)

// ---- metaserver requests and replies: POST PathMeta+op, JSON bodies ----

// Metaserver operation paths.
const (
	PathMeta       = "/v1/meta/"
	OpLookup       = "lookup"
	OpResolve      = "resolve"
	OpGetAttr      = "getattr"
	OpSetAttr      = "setattr"
	OpMkdir        = "mkdir"
	OpCreate       = "create"
	OpUnlink       = "unlink"
	OpRmdir        = "rmdir"
	OpRename       = "rename"
	OpLink         = "link"
	OpSymlink      = "symlink"
	OpReadlink     = "readlink"
	OpReadDir      = "readdir"
	OpGetXattr     = "getxattr"
	OpSetXattr     = "setxattr"
	OpListXattr    = "listxattr"
	OpRemoveXattr  = "removexattr"
	OpStatFS       = "statfs"
	OpOpen         = "open"
	OpRelease      = "release"
	OpSession      = "session"
	OpReadChunk    = "readchunk"
	OpCommit       = "commit"
	OpAlloc        = "alloc"
	OpGroups       = "groups"
	OpHeartbeat    = "heartbeat"
	OpRemoveMember = "rmmember"
	OpLock         = "lock"
	OpDiscard      = "discard"
)

// LockReq is one byte-range or flock(2) lock request (OpLock). Locks
// belong to an owner within a session: the session's mount process, and
// there the kernel's lock owner (a process's file table for POSIX locks,
// an open file for OFD and flock locks). A session that expires loses its
// locks. Cmd is "get" (F_GETLK: the conflicting lock, Typ F_UNLCK when
// none), "set" (F_SETLK/F_SETLKW: grant, change or release; with WaitMs,
// wait up to that long for a conflict to clear) or "release" (every lock
// of the owner on the inode). Flock locks and POSIX locks never conflict
// with each other, as on Linux. Typ uses Linux's values (F_RDLCK 0,
// F_WRLCK 1, F_UNLCK 2).
type LockReq struct {
	Ino     uint64 `json:"i"`
	Session string `json:"s"`
	Owner   uint64 `json:"o"`
	Flock   bool   `json:"f,omitempty"`
	Cmd     string `json:"c"`
	Typ     uint32 `json:"t"`
	Start   uint64 `json:"a"`
	End     uint64 `json:"b"`
	Pid     uint32 `json:"p,omitempty"`
	WaitMs  int    `json:"w,omitempty"`
}

// LockReply answers a LockReq: whether a set was granted, and otherwise
// (or for get) the conflicting lock.
type LockReply struct {
	Granted bool   `json:"g,omitempty"`
	Typ     uint32 `json:"t"`
	Start   uint64 `json:"a,omitempty"`
	End     uint64 `json:"b,omitempty"`
	Pid     uint32 `json:"p,omitempty"`
}

// InoReq names an inode (getattr, readlink, listxattr).
type InoReq struct {
	Ino uint64 `json:"i"`
}

// LookupReq looks up Name in directory Parent.
type LookupReq struct {
	Parent uint64 `json:"p"`
	Name   string `json:"n"`
}

// ResolveReq walks an absolute slash-separated path from the root without
// following symlinks. It answers with an Attr. With Open, a regular file
// found is also registered as open by Session, as OpOpen would, and the
// Attr is the one read under that open: a reader by path pays one round
// trip instead of two. Other nodes are answered without an open.
type ResolveReq struct {
	Path    string `json:"path"`
	Open    bool   `json:"o,omitempty"`
	Session string `json:"sess,omitempty"`
}

// SetAttrReq changes the attributes named by Valid (Set* bits). A size
// change truncates or extends the file.
type SetAttrReq struct {
	Ino   uint64 `json:"i"`
	Valid uint32 `json:"v"`
	Mode  uint32 `json:"m,omitempty"`
	Uid   uint32 `json:"u,omitempty"`
	Gid   uint32 `json:"g,omitempty"`
	Size  uint64 `json:"s,omitempty"`
	Atime int64  `json:"at,omitempty"`
	Mtime int64  `json:"mt,omitempty"`
	Ctime int64  `json:"ct,omitempty"`
	Sync  bool   `json:"sync,omitempty"` // durable before the reply
}

// CreateReq creates a node: mkdir, create (regular file; mknod of a FIFO,
// socket or device when Mode says so) and symlink use it. Exclusive makes
// create fail with EEXIST when the name exists; otherwise create of an
// existing regular file answers with that file. Open registers the new
// inode as open by Session, as OpOpen would.
type CreateReq struct {
	Parent    uint64 `json:"p"`
	Name      string `json:"n"`
	Mode      uint32 `json:"m"`
	Uid       uint32 `json:"u"`
	Gid       uint32 `json:"g"`
	Rdev      uint32 `json:"r,omitempty"`
	Target    string `json:"t,omitempty"` // symlink target
	Exclusive bool   `json:"x,omitempty"`
	Open      bool   `json:"o,omitempty"`
	Session   string `json:"sess,omitempty"`
}

// UnlinkReq removes Name from Parent (unlink and rmdir). When the last
// link of a file goes while Session holds it open, the inode lives on as an
// orphan until that session releases it.
type UnlinkReq struct {
	Parent  uint64 `json:"p"`
	Name    string `json:"n"`
	Session string `json:"sess,omitempty"`
}

// UnlinkReply answers unlink and rmdir with the parent directory's
// attributes as the removal left them. The kernel drops a directory's
// attributes after every removal in it and default_permissions asks for
// them again before the next one; with these a mount answers that itself.
// Parent.Ino is 0 when the metaserver cannot tell (the replay of a retried
// removal).
type UnlinkReply struct {
	Parent Attr `json:"parent"`
}

// RenameReq renames Parent/Name to NewParent/NewName; Flags are Rename*.
type RenameReq struct {
	Parent    uint64 `json:"p"`
	Name      string `json:"n"`
	NewParent uint64 `json:"np"`
	NewName   string `json:"nn"`
	Flags     uint32 `json:"f,omitempty"`
	Session   string `json:"sess,omitempty"`
}

// LinkReq adds a hard link NewParent/NewName to inode Ino.
type LinkReq struct {
	Ino       uint64 `json:"i"`
	NewParent uint64 `json:"np"`
	NewName   string `json:"nn"`
}

// ReadlinkReply holds a symlink's target.
type ReadlinkReply struct {
	Target string `json:"t"`
}

// ReadDirReq lists directory Ino in name order, starting after name After.
type ReadDirReq struct {
	Ino   uint64 `json:"i"`
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"` // 0: server default
}

// ReadDirReply is one page of a listing; More says another page follows.
type ReadDirReply struct {
	Entries []DirEntry `json:"e"`
	More    bool       `json:"more,omitempty"`
}

// XattrReq names (and for set, carries) an extended attribute.
type XattrReq struct {
	Ino   uint64 `json:"i"`
	Name  string `json:"n,omitempty"`
	Value []byte `json:"v,omitempty"`
	Flags uint32 `json:"f,omitempty"` // Xattr*
}

// XattrReply carries an attribute value or a list of names.
type XattrReply struct {
	Value []byte   `json:"v,omitempty"`
	Names []string `json:"names,omitempty"`
}

// OpenReq registers (OpOpen) or drops (OpRelease) one open of Ino by
// Session. Open answers with the inode's current Attr: that read is what
// gives close-to-open consistency.
type OpenReq struct {
	Ino     uint64 `json:"i"`
	Session string `json:"sess"`
}

// SessionReq is a client's keep-alive: the inodes it holds open now. A
// session that misses its keep-alives for the session TTL loses its opens.
type SessionReq struct {
	Session string   `json:"sess"`
	Open    []uint64 `json:"open,omitempty"`
	// Uploads are the blocks this client uploaded (or is uploading) and
	// has not committed yet. The collector of uncommitted uploads leaves
	// them alone while the session lives, however slow the writer is.
	Uploads []IDRange `json:"up,omitempty"`
}

// IDRange is the block ids [0] through [1], both included.
type IDRange [2]uint64

// SessionReply answers a keep-alive. Full says that no group can take a
// new block now, so the client can fail a write at once with NOSPACE
// instead of buffering bytes it will not be able to store.
type SessionReply struct {
	Full bool `json:"full,omitempty"`
}

// DiscardReq names blocks the client uploaded and will never commit: the
// write they belonged to failed or was abandoned. The metaserver queues
// for deletion those that were leased, are in no chunk and are no other
// session's upload, so their space comes back at once instead of after
// the upload grace period.
type DiscardReq struct {
	Session string     `json:"sess"`
	Blocks  []BlockRef `json:"blocks"`
}

// BlockRef is a block id and the group it was placed in.
type BlockRef struct {
	ID    uint64 `json:"id"`
	Group uint32 `json:"g"`
}

// ReadChunkReq asks for the slice list of chunk Index of Ino.
type ReadChunkReq struct {
	Ino   uint64 `json:"i"`
	Index uint32 `json:"c"`
}

// ReadChunkReply is a chunk's slice list in commit order (later wins) and
// the inode version it was read at.
type ReadChunkReply struct {
	Version uint64  `json:"v"`
	Slices  []Slice `json:"s"`
}

// CommitReq makes uploaded blocks part of a file. Size is the file size
// after the write (the file grows to it; a commit never shrinks a file).
// With Sync the reply waits for a synced (fsync'd) metadata write.
type CommitReq struct {
	Ino    uint64       `json:"i"`
	Slices []ChunkSlice `json:"s"`
	Size   uint64       `json:"size"`
	Mtime  int64        `json:"mt"`
	Sync   bool         `json:"sync,omitempty"`
}

// AllocReq leases Count new block ids and asks where Bytes of new data
// should go.
type AllocReq struct {
	Count int   `json:"n"`
	Bytes int64 `json:"b"`
}

// AllocReply is a lease of ids [First, First+Count) and the placement: the
// group to write to and its members' addresses, preferred member first.
type AllocReply struct {
	First   uint64   `json:"first"`
	Count   int      `json:"n"`
	Group   uint32   `json:"g"`
	Members []string `json:"members"`
}

// Member is a chunkserver as the tracker sees it.
type Member struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Group    uint32 `json:"group"`
	Capacity uint64 `json:"capacity"` // bytes of the disk the store is on
	Free     uint64 `json:"free"`     // bytes writable before the reserve
	Used     uint64 `json:"used"`     // bytes held in blocks
	Blocks   uint64 `json:"blocks"`
	Load     int    `json:"load"` // requests in flight
	Seq      uint64 `json:"seq"`  // last binlog sequence number
	Healthy  bool   `json:"healthy"`
	LastSeen int64  `json:"last_seen"` // Unix nanoseconds of the last heartbeat

	// Replication, as the member reports it (see chunkserver's doc).
	MinCopies int          `json:"min_copies,omitempty"` // the member's --min-copies
	Full      bool         `json:"full,omitempty"`       // free space is at the reserve: out of the write quorum
	Started   int64        `json:"started,omitempty"`    // Unix nanoseconds the process started
	Followers []Follower   `json:"followers,omitempty"`  // peers that fetch this member's binlog
	Sources   []Source     `json:"sources,omitempty"`    // this member's progress on each peer's binlog
	Scrub     *ScrubReport `json:"scrub,omitempty"`
	InSync    bool         `json:"in_sync,omitempty"` // set by the tracker: the member is in its group's in-sync set
}

// Follower is how far a peer has fetched a member's binlog, as the member
// (the source) saw it in the peer's fetches.
type Follower struct {
	ID string `json:"id"`
	// Ack is the highest seq the follower holds durably: its last fetch
	// asked for Ack+1.
	Ack uint64 `json:"ack"`
	// CaughtUp is when (Unix nanoseconds) the follower last held every
	// entry the source had; the source's start time if it never fetched.
	CaughtUp int64 `json:"caught_up"`
	// Behind is the entries and bytes (of puts) between Ack and the
	// source's last seq.
	Behind      uint64 `json:"behind"`
	BehindBytes uint64 `json:"behind_bytes"`
}

// Source is a member's progress, as a follower, on one peer's binlog.
type Source struct {
	ID   string `json:"id"`
	Next uint64 `json:"next"` // the next seq this member fetches
	Last uint64 `json:"last"` // the peer's last seq in its latest reply
	// Resync is set while the member copies the peer's inventory because
	// it is new or the peer's log was trimmed past Next; Done and Total
	// count the blocks compared so far and listed.
	Resync bool   `json:"resync,omitempty"`
	Done   uint64 `json:"done,omitempty"`
	Total  uint64 `json:"total,omitempty"`
	Err    string `json:"err,omitempty"` // the last failure, empty once it recovered
}

// ScrubReport is a member's background verification of its blocks.
type ScrubReport struct {
	LastPass     int64  `json:"last_pass,omitempty"` // Unix nanoseconds the last full pass ended
	Passes       uint64 `json:"passes"`
	Checked      uint64 `json:"checked"`      // blocks verified since start
	Bytes        uint64 `json:"bytes"`        // bytes verified since start
	Damaged      uint64 `json:"damaged"`      // copies that failed verification
	Repaired     uint64 `json:"repaired"`     // damaged copies replaced from a peer
	Unrepairable uint64 `json:"unrepairable"` // damaged copies no peer could replace
}

// Group is a set of chunkservers holding the same blocks.
type Group struct {
	ID      uint32   `json:"id"`
	Members []Member `json:"members"`
	// ISR is the in-sync set: the member ids that hold every acknowledged
	// block of the group. It changes only at the tracker, and each change
	// bumps ISRVersion. A PUT is acknowledged once every ISR member holds
	// the block, and only while the set has at least MinCopies members.
	ISR        []string `json:"isr,omitempty"`
	ISRVersion uint64   `json:"isr_version,omitempty"`
	MinCopies  int      `json:"min_copies,omitempty"`
}

// HeartbeatReply answers a Heartbeat with the member's group as the
// tracker sees it: its peers (whose binlogs the member follows) and the
// in-sync set (which its PUTs wait for).
type HeartbeatReply struct {
	Group Group `json:"group"`
	// Epoch is the metaserver leader's epoch (failover; 0 without it). A
	// chunkserver refuses block deletes sent under an older one.
	Epoch uint64 `json:"epoch,omitempty"`
}

// HeaderEpoch carries the metaserver epoch on a block delete, and on the
// answers of the leader's op-log endpoints.
const HeaderEpoch = "X-Reelfs-Epoch"

// RemoveMemberReq removes a member from its group (OpRemoveMember): the
// tracker forgets it and drops it from the in-sync set, so the deletion
// queue and placement stop waiting for it. A removed member that comes
// back joins as a new member and must catch up first.
type RemoveMemberReq struct {
	Group uint32 `json:"group"`
	ID    string `json:"id"`
}

// GroupsReply lists every group the tracker knows.
type GroupsReply struct {
	Groups []Group `json:"groups"`
	// Meta is the answering metaserver's view of failover; nil when it
	// runs alone (no --ha).
	Meta *MetaHA `json:"meta,omitempty"`
}

// MetaHA is a metaserver's view of failover.
type MetaHA struct {
	Node      string         `json:"node"`    // this metaserver's node id
	Leading   bool           `json:"leading"` // it is the leader
	Leader    string         `json:"leader"`  // the leader's address
	Epoch     uint64         `json:"epoch"`
	ISR       []string       `json:"isr"`                 // node ids holding every acknowledged change
	Followers []MetaFollower `json:"followers,omitempty"` // on the leader: who fetches its op log
	LastSeq   uint64         `json:"last_seq"`
	Committed uint64         `json:"committed"` // last op-log seq every in-sync member holds
}

// MetaFollower is a follower as the leader sees it.
type MetaFollower struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Next      uint64 `json:"next"`       // the next op-log seq it asked for
	LastFetch int64  `json:"last_fetch"` // Unix nanoseconds
	InSync    bool   `json:"in_sync"`
}

// The op-log replication endpoints of a metaserver (all GET, with the
// cluster secret): the long-poll fetch (?from=&wait=&member=&addr=&epoch=),
// the epoch history and the snapshot a member resyncs from.
//
// PathHA answers any metaserver's MetaHA (GET, with the cluster secret),
// whether it leads or not.
const (
	PathHA         = "/v1/ha"
	PathOpLog      = "/v1/oplog"
	PathOpLogEpoch = "/v1/oplog/epochs"
	PathOpLogSnap  = "/v1/oplog/snapshot"
	PathOpLogLeave = "/v1/oplog/leave" // POST ?epoch=&member=: a follower shutting down
	// PathBackup answers a backup of the namespace (GET, with the cluster
	// secret) on a metaserver that runs alone or leads; see
	// metaserver.CheckBackup for its format.
	PathBackup = "/v1/backup"
)

// Heartbeat is what a chunkserver reports to the tracker (OpHeartbeat,
// which answers with a HeartbeatReply).
type Heartbeat = Member

// ---- chunkserver HTTP API ----
//
//   PUT    /v1/block/{id}           body: the block; header HeaderCRC optional
//   GET    /v1/block/{id}           optional Range: bytes=a-b (one range)
//   HEAD   /v1/block/{id}           Content-Length is the block size
//   DELETE /v1/block/{id}           404 when absent
//   GET    /v1/blocks?after=ID&limit=N&before=UNIXNANO   -> BlockList
//   GET    /v1/binlog?from=SEQ&limit=N&wait=DURATION&member=ID -> BinlogReply
//          (member names a follower of the group: its from acknowledges
//          every entry below it)
//   GET    /v1/status                                     -> Member
//   GET    /v1/health                                     -> "ok" or 503 "unhealthy"
//          (no secret: Consul's health check cannot send one)
//
// Block ids in paths are 16 lower-case hex digits (BlockName).

// Chunkserver paths and headers.
const (
	PathBlock  = "/v1/block/"
	PathBlocks = "/v1/blocks"
	PathBinlog = "/v1/binlog"
	PathStatus = "/v1/status"
	// PathHealth is the unauthenticated health endpoint of the metaserver
	// and the chunkserver, which Consul's HTTP check fetches. It answers a
	// status word and nothing else.
	PathHealth = "/v1/health"
	// HeaderCRC carries the CRC32C (Castagnoli) of a whole block body, as
	// 8 hex digits, so the receiver can refuse a body damaged in transit.
	HeaderCRC = "X-Reelfs-Crc32c"
	// HeaderError carries the wire Code of a failed request whose body is
	// not JSON (block GETs).
	HeaderError = "X-Reelfs-Error"
)

// BlockInfo describes one stored block.
type BlockInfo struct {
	ID    uint64 `json:"id"`
	Size  uint32 `json:"size"`
	Mtime int64  `json:"mt"`
}

// BlockList is one page of a chunkserver's inventory in id order.
type BlockList struct {
	Blocks []BlockInfo `json:"blocks"`
	More   bool        `json:"more,omitempty"`
}

// Binlog operations.
const (
	BinlogPut    = "put"
	BinlogDelete = "del"
)

// BinlogEntry is one local change of a chunkserver.
type BinlogEntry struct {
	Seq  uint64 `json:"seq"`
	Op   string `json:"op"`
	ID   uint64 `json:"id"`
	Size uint32 `json:"size,omitempty"`
	Time int64  `json:"t"`
}

// BinlogReply is a page of binlog entries starting at the requested seq.
// First is the oldest seq still held (a follower behind it must resync).
type BinlogReply struct {
	Entries []BinlogEntry `json:"entries"`
	First   uint64        `json:"first"`
	Last    uint64        `json:"last"`
}
