// Package fusefs mounts a reelfs cluster as a POSIX filesystem with FUSE
// (go-fuse v2, package fs) over the client SDK.
//
// # Shape
//
// Every reelfs inode the kernel knows is a node (an fs.Inode whose
// StableAttr.Ino is the reelfs inode number, so st_ino is stable across
// mounts and hard links share one node). Every open(2) of a regular file
// is a handle wrapping one client.File; every opendir(2) is a dirStream.
// Namespace operations go straight to the client, which retries transient
// failures; errors become errnos in one place (toErrno) and failures that
// a program can only see as EIO are logged there, once, with the
// operation, the inode and the error (which names block and servers).
//
// # Permissions
//
// The mount always uses default_permissions: the kernel checks access
// against the mode, uid and gid we return, exactly as for a local
// filesystem, and new inodes get the caller's uid and gid (the group of a
// setgid directory instead, which a new directory also inherits). Modes
// are passed through unchanged (Options.NullPermissions), so a 000 file
// is unreadable. With allow_other (the default for root) other users may
// enter the mount, still subject to those checks.
//
// # Kernel caching
//
// Names and attributes are cached by the kernel for EntryTimeout and
// AttrTimeout (1 s by default); failed lookups are not cached unless
// NegativeTimeout is set. Changes made through this mount are seen at
// once; changes made elsewhere after at most these times.
//
// File data is cached in the kernel's page cache (no direct I/O, so mmap
// works). Writes go through the page cache to the client at once (no
// writeback cache), so the kernel's size after a write is the writer's.
// Whether cached pages survive an open is decided per open: the
// metaserver's answer to open carries the inode's version, which changes
// with every commit and truncate. If it equals the version this mount
// recorded when it last released the inode, nobody changed the data and
// the open returns FOPEN_KEEP_CACHE, so re-reading an unchanged file
// costs nothing. Otherwise the kernel drops the pages and the cached
// attributes are invalidated, so the next read sees the new size and
// bytes.
//
// # Consistency
//
// reelfs gives close-to-open consistency, as NFS does: close(2) (FLUSH)
// uploads and commits what was written, and reports ENOSPC or EIO if that
// failed; a later open(2) anywhere reads the committed version. Two
// mounts writing the same file at the same time get no ordering beyond
// that (the last commit wins where they overlap). fsync(2) commits
// durably; fsync on a directory waits for the metaserver's next synced
// write. Within one mount all handles of an inode share one client state,
// so every reader sees every writer's bytes at once, and stat reports
// the size including unflushed writes.
//
// # Orphans
//
// Unlinking (or renaming over) a file this mount holds open keeps the
// inode alive as an orphan in the metaserver for this client's session:
// reads and writes through the open handles go on, fstat shows nlink 0,
// and the last release frees the inode and its blocks. If the client dies
// instead, the session expires and the metaserver reclaims the orphan.
//
// # Locks
//
// fcntl(2) record locks, process-owned and OFD, are served from a lock
// table in this mount: byte ranges with owners, shared and exclusive,
// F_GETLK conflicts, splitting on partial unlock, and blocking waits that
// a signal interrupts (EINTR). A process's locks on a file go when it
// closes any descriptor of the file (FLUSH carries its lock owner), OFD
// locks when their open file is released. flock(2) is left to the kernel,
// which keeps it in the inode of this mount: the same scope, with exact
// close semantics. Locks are local: they do NOT hold across mounts or
// against the HTTP server, and they vanish with the mount. Deadlocks are
// not detected.
//
// # Lifecycle
//
// Mount mounts and starts serving; Wait returns when the kernel ends the
// connection. Unmount flushes open files best effort and unmounts, or
// detaches lazily when the mount is busy. Files the kernel never released
// (the connection was cut) are closed when serving ends. A mount point
// whose server was killed answers ENOTCONN; LazyUnmount (reelfs umount)
// clears it.
package fusefs
