package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// ChangeLog records the store's changes once they are durable. *Binlog
// implements it; a store opened without one records nothing.
type ChangeLog interface {
	// Append makes e durable and returns its sequence number.
	Append(ctx context.Context, e wire.BinlogEntry) (uint64, error)
	// Err reports a failure that makes every Append fail.
	Err() error
}

var _ ChangeLog = (*Binlog)(nil)

// stagedLog is a ChangeLog that can write an entry and make it durable in
// two steps. Put writes the entry before it fsyncs the block's directory
// and the log together, so on a journaling file system both changes land
// in one journal commit instead of two.
type stagedLog interface {
	ChangeLog
	// Stage writes e, not yet durable, and returns its sequence number.
	Stage(ctx context.Context, e wire.BinlogEntry) (uint64, error)
	// Sync returns once entry seq is durable.
	Sync(ctx context.Context, seq uint64) error
}

// StoreOptions configure OpenDiskStore.
type StoreOptions struct {
	// Name identifies this server in error messages, e.g. "ID@ADDR".
	Name string
	// Reserve is the free space in bytes a PUT must leave on the disk.
	Reserve uint64
	// Changes receives one entry per put and delete; nil records nothing.
	Changes ChangeLog
	// Logger receives startup and damage reports; nil discards them.
	Logger *slog.Logger
	// TrailerCache is how many decoded block trailers (up to 276 bytes of
	// CRCs each, about 350 bytes with overhead) are kept in memory so warm
	// reads skip the trailer pread; 0 disables the cache.
	TrailerCache int
}

// Usage is the store's content.
type Usage struct {
	Used   uint64 // data bytes of all blocks
	Blocks uint64
}

// DiskSpace describes the file system the store lives on.
type DiskSpace struct {
	Capacity uint64 // bytes of the file system
	Avail    uint64 // bytes an unprivileged writer may still use
}

// Free is what new blocks may still take: Avail less reserve, 0 below it.
func (d DiskSpace) Free(reserve uint64) uint64 {
	if d.Avail <= reserve {
		return 0
	}
	return d.Avail - reserve
}

// lockStripes is how many mutexes serialize writers of the same block id.
const lockStripes = 256

// tempPrefix starts the names of files being written; the startup scan
// removes any left by a crash.
const tempPrefix = ".tmp-"

// DiskStore keeps blocks as files under DIR/blocks/XX/YY/<16-hex-id>,
// where XX and YY are the lowest and second-lowest byte of the id in hex.
// Ids are handed out in increasing leased ranges, so the low bytes spread
// consecutive blocks evenly over the 65,536 leaf directories. See the
// package documentation for the file format and write protocol.
type DiskStore struct {
	dir     string // DIR/blocks
	name    string
	reserve uint64
	changes ChangeLog
	log     *slog.Logger
	tab     *crc32.Table
	// dirSync fsyncs a directory (syncDir); a field so that tests can
	// see and fail the identical-retry PUT's fsync.
	dirSync func(dir string) error

	// stripes serialize Put and Delete of one id (by id % lockStripes), so
	// the check for an existing file, the write and the binlog entry of one
	// block happen in one order. Reads take no stripe: a rename is atomic
	// and an open file survives an unlink.
	stripes [lockStripes]sync.Mutex

	// dirMu guards dirs, the leaf directories known to exist.
	dirMu sync.Mutex
	dirs  map[uint16]bool

	// trailers caches decoded trailers; see trailerCache for how Put and
	// Delete keep it from serving a trailer of a replaced file.
	trailers *trailerCache

	// mu guards idx and closed.
	mu     sync.RWMutex
	idx    index
	closed bool
}

// OpenDiskStore opens the block store rooted at dir (DIR/blocks is created
// beneath it), removes temp files left by a crash and indexes every block.
func OpenDiskStore(ctx context.Context, dir string, opts StoreOptions) (*DiskStore, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &DiskStore{
		dir:     filepath.Join(dir, "blocks"),
		name:    opts.Name,
		reserve: opts.Reserve,
		changes: opts.Changes,
		log:     logger,
		tab:     castagnoli(),
		dirSync: syncDir,
		dirs:    make(map[uint16]bool),
	}
	if s.name == "" {
		s.name = dir
	}
	if opts.TrailerCache < 0 {
		return nil, fmt.Errorf("chunkserver: open store: trailer cache of %d entries", opts.TrailerCache)
	}
	s.trailers = newTrailerCache(opts.TrailerCache)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkserver: open store: %w", err)
	}
	if err := s.scan(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// scan walks the block directories: it indexes block files, removes temp
// files and reports anything else.
func (s *DiskStore) scan(ctx context.Context) error {
	tops, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("chunkserver: scan: %w", err)
	}
	var temps, strays int
	for _, top := range tops {
		lo, ok := parseHexByte(top.Name())
		if !ok || !top.IsDir() {
			s.log.Warn("store: ignoring stray entry", "path", filepath.Join(s.dir, top.Name()))
			strays++
			continue
		}
		subs, err := os.ReadDir(filepath.Join(s.dir, top.Name()))
		if err != nil {
			return fmt.Errorf("chunkserver: scan: %w", err)
		}
		for _, sub := range subs {
			hi, ok := parseHexByte(sub.Name())
			leaf := filepath.Join(s.dir, top.Name(), sub.Name())
			if !ok || !sub.IsDir() {
				s.log.Warn("store: ignoring stray entry", "path", leaf)
				strays++
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			s.dirs[uint16(hi)<<8|uint16(lo)] = true
			files, err := os.ReadDir(leaf)
			if err != nil {
				return fmt.Errorf("chunkserver: scan: %w", err)
			}
			for _, de := range files {
				path := filepath.Join(leaf, de.Name())
				if strings.HasPrefix(de.Name(), tempPrefix) {
					if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("chunkserver: remove temp file: %w", err)
					}
					temps++
					continue
				}
				id, err := wire.ParseBlockName(de.Name())
				if err != nil || id&0xffff != uint64(hi)<<8|uint64(lo) || !de.Type().IsRegular() {
					s.log.Warn("store: ignoring stray entry", "path", path)
					strays++
					continue
				}
				fi, err := de.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return fmt.Errorf("chunkserver: scan: %w", err)
				}
				n, ok := dataLenForFileSize(fi.Size())
				if !ok {
					// Keep it listed: reads report the damage, and the
					// metaserver can still see and delete it.
					s.log.Warn("store: block file has an impossible size", "block", de.Name(), "bytes", fi.Size())
					n = min(max(fi.Size()-footerLen, 0), wire.MaxBlockSize)
				}
				s.idx.put(blockMeta{id: id, size: uint32(n), mtime: fi.ModTime().UnixNano()})
			}
		}
	}
	s.log.Info("store: opened", "dir", s.dir, "blocks", s.idx.count, "used", s.idx.used,
		"temp_files_removed", temps, "strays", strays)
	return nil
}

// parseHexByte parses a two-digit lower-case hex directory name.
func parseHexByte(name string) (byte, bool) {
	if len(name) != 2 {
		return 0, false
	}
	var v byte
	for i := 0; i < 2; i++ {
		c := name[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// leafDir is the directory of block id.
func (s *DiskStore) leafDir(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%02x", byte(id)), fmt.Sprintf("%02x", byte(id>>8)))
}

// Path returns the file that holds block id.
func (s *DiskStore) Path(id uint64) string {
	return filepath.Join(s.leafDir(id), wire.BlockName(id))
}

// Put stores block id durably. It reports created=false when the block
// already held exactly data (a retried PUT). A block with other content is
// EEXIST; a stored copy that fails its checksums is replaced. A block that
// would leave less than the reserve free is NOSPACE, with nothing written.
func (s *DiskStore) Put(ctx context.Context, id uint64, data []byte) (created bool, err error) {
	created, _, err = s.PutSeq(ctx, id, data)
	return created, err
}

// PutSeq is Put that also returns the binlog seq of the put entry of a
// new block (0 for an identical retry, or without a change log): the
// entry the followers must fetch past before the PUT is acknowledged.
func (s *DiskStore) PutSeq(ctx context.Context, id uint64, data []byte) (created bool, seq uint64, err error) {
	return s.put(ctx, id, data, nil)
}

// PutUnless is Put for a copy from a peer: it stores nothing, and reports
// skipped, when veto (called under the id's lock, which Delete takes too)
// says the block must not come back, e.g. because it was deleted here.
func (s *DiskStore) PutUnless(ctx context.Context, id uint64, data []byte, veto func() bool) (created, skipped bool, err error) {
	vetoed := false
	created, _, err = s.put(ctx, id, data, func() bool {
		vetoed = veto()
		return vetoed
	})
	return created, vetoed, err
}

func (s *DiskStore) put(ctx context.Context, id uint64, data []byte, veto func() bool) (created bool, seq uint64, err error) {
	if id == 0 {
		return false, 0, wire.Errorf(wire.ErrInvalid, "chunkserver: put: block id 0")
	}
	if len(data) > wire.MaxBlockSize {
		return false, 0, wire.Errorf(wire.ErrInvalid, "chunkserver: put %s: %d bytes exceed the maximum block size %d",
			wire.BlockName(id), len(data), wire.MaxBlockSize)
	}
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	mu := &s.stripes[id%lockStripes]
	mu.Lock()
	defer mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return false, 0, err
	}
	if veto != nil && veto() {
		return false, 0, nil
	}
	if s.changes != nil {
		if err := s.changes.Err(); err != nil {
			return false, 0, fmt.Errorf("chunkserver: put %s: %w", wire.BlockName(id), err)
		}
	}
	path := s.Path(id)
	switch err := s.compare(id, path, data); {
	case err == nil:
		// A retry. The first attempt may have failed after its rename
		// (the directory fsync, or the binlog), so the name may not be
		// durable yet: answer only once it is and the log still works.
		if err := s.dirSync(s.leafDir(id)); err != nil {
			return false, 0, fmt.Errorf("chunkserver: put %s: fsync directory: %w", wire.BlockName(id), err)
		}
		if s.changes != nil {
			if err := s.changes.Err(); err != nil {
				return false, 0, fmt.Errorf("chunkserver: put %s: %w", wire.BlockName(id), err)
			}
		}
		return false, 0, nil
	case errors.Is(err, wire.ErrNotFound):
	case errors.Is(err, wire.ErrChecksum):
		s.log.Warn("store: replacing damaged block", "block", wire.BlockName(id), "err", err)
	default:
		return false, 0, err
	}
	need := uint64(fileSizeFor(int64(len(data))))
	space, err := s.DiskSpace()
	if err != nil {
		return false, 0, err
	}
	if space.Avail < need || space.Avail-need < s.reserve {
		return false, 0, wire.Errorf(wire.ErrNoSpace, "chunkserver %s: put %s: %d bytes free, %d needed plus a reserve of %d",
			s.name, wire.BlockName(id), space.Avail, need, s.reserve)
	}
	dir, mtime, err := s.writeFile(id, path, data)
	if err != nil {
		return false, 0, fmt.Errorf("chunkserver: put %s: %w", wire.BlockName(id), err)
	}
	// The new file is under the block's name now: no read may go on
	// with a trailer decoded from the file it replaced.
	s.trailers.invalidate(id)
	meta := blockMeta{id: id, size: uint32(len(data)), mtime: mtime}
	seq, err = s.commit(ctx, meta, dir)
	if err != nil {
		// The block is in place but its directory entry or its binlog
		// entry may not be durable: index it so it is listed and served
		// (as it is on disk), and fail the PUT so the client knows it may
		// be lost or the group may not learn of it.
		s.indexPut(meta)
		return false, 0, fmt.Errorf("chunkserver: put %s: %w", wire.BlockName(id), err)
	}
	s.indexPut(meta)
	return true, seq, nil
}

// commit makes a block file that was just renamed into place durable and
// logged: it fsyncs its directory and appends the put entry to the change
// log (which fsyncs the log) at the same time, and returns once both are
// done. Both only follow the data's own fsync and the rename, so the log
// can never name a torn block; it may name a block whose directory entry
// a crash took back, but then the PUT was not acknowledged (see the
// package documentation).
func (s *DiskStore) commit(ctx context.Context, m blockMeta, dir string) (uint64, error) {
	if s.changes == nil {
		return 0, syncDir(dir)
	}
	ctx = context.WithoutCancel(ctx)
	e := wire.BinlogEntry{Op: wire.BinlogPut, ID: m.id, Size: m.size, Time: m.mtime}
	log, staged := s.changes.(stagedLog)
	var seq uint64
	var logErr error
	if staged {
		// The entry is written before either fsync starts, so the
		// directory's fsync and the log's share one journal commit.
		seq, logErr = log.Stage(ctx, e)
	}
	synced := make(chan error, 1)
	go func() { synced <- syncDir(dir) }()
	switch {
	case !staged:
		seq, logErr = s.changes.Append(ctx, e)
	case logErr == nil:
		logErr = log.Sync(ctx, seq)
	}
	dirErr := <-synced
	if dirErr != nil {
		dirErr = fmt.Errorf("fsync directory: %w", dirErr)
	}
	return seq, errors.Join(dirErr, logErr)
}

func (s *DiskStore) indexPut(m blockMeta) {
	s.mu.Lock()
	s.idx.put(m)
	s.mu.Unlock()
}

// compare checks the stored copy of id against data: nil when identical,
// EEXIST when different, ENOENT when absent, CHECKSUM when damaged. It
// reads the trailer from the file, never from the cache, so a PUT finds
// and replaces a damaged trailer even while reads use a cached copy.
func (s *DiskStore) compare(id uint64, path string, data []byte) error {
	b, err := s.openFile(id, path, false)
	if err != nil {
		return err
	}
	defer b.Close()
	if b.Size() != int64(len(data)) {
		return wire.Errorf(wire.ErrExist, "chunkserver %s: block %s exists with %d bytes, not %d",
			s.name, wire.BlockName(id), b.Size(), len(data))
	}
	buf := make([]byte, wire.CRCBlock)
	for off := int64(0); off < b.Size(); off += wire.CRCBlock {
		n := min(wire.CRCBlock, b.Size()-off)
		got, err := b.ReadRange(off, n, buf)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data[off:off+n]) {
			return wire.Errorf(wire.ErrExist, "chunkserver %s: block %s exists with different content",
				s.name, wire.BlockName(id))
		}
	}
	return nil
}

// writeFile writes data and its trailer to a temp file in the block's
// directory, fsyncs it and renames it over path. It returns the directory,
// which the caller must fsync, and the file's mtime.
func (s *DiskStore) writeFile(id uint64, path string, data []byte) (string, int64, error) {
	dir, err := s.ensureDir(id)
	if err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(dir, tempPrefix+wire.BlockName(id)+"-*")
	if err != nil {
		return "", 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", 0, err
	}
	if _, err := f.Write(appendTrailer(make([]byte, 0, maxTrailerLen), data, s.tab)); err != nil {
		return "", 0, err
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", 0, err
	}
	ok = true
	return dir, fi.ModTime().UnixNano(), nil
}

// ensureDir creates the leaf directory of id (and its parent) if needed,
// fsyncing each parent that gained an entry so the path survives a crash.
func (s *DiskStore) ensureDir(id uint64) (string, error) {
	key := uint16(id)
	dir := s.leafDir(id)
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if s.dirs[key] {
		return dir, nil
	}
	top := filepath.Dir(dir)
	for _, d := range []string{top, dir} {
		err := os.Mkdir(d, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return "", err
		}
	}
	s.dirs[key] = true
	return dir, nil
}

// Verify reads the whole of block id from its file, with a trailer read
// from the file (never the cache), and checks every piece against its
// CRC; buf must hold a block. It returns the bytes verified.
func (s *DiskStore) Verify(ctx context.Context, id uint64, buf []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	b, err := s.openFile(id, s.Path(id), false)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	data, err := b.ReadRange(0, b.Size(), buf)
	if err != nil {
		// A reader may hold the trailer cached: let it find out now.
		s.trailers.invalidate(id)
		return 0, err
	}
	return len(data), nil
}

// Stat returns the indexed size and mtime of block id.
func (s *DiskStore) Stat(ctx context.Context, id uint64) (wire.BlockInfo, error) {
	if err := ctx.Err(); err != nil {
		return wire.BlockInfo{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return wire.BlockInfo{}, ErrClosed
	}
	m, ok := s.idx.get(id)
	if !ok {
		return wire.BlockInfo{}, wire.Errorf(wire.ErrNotFound, "chunkserver %s: block %s not found", s.name, wire.BlockName(id))
	}
	return wire.BlockInfo{ID: m.id, Size: m.size, Mtime: m.mtime}, nil
}

// Delete removes block id; ENOENT when it is absent.
func (s *DiskStore) Delete(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := &s.stripes[id%lockStripes]
	mu.Lock()
	defer mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.changes != nil {
		if err := s.changes.Err(); err != nil {
			return fmt.Errorf("chunkserver: delete %s: %w", wire.BlockName(id), err)
		}
	}
	err := os.Remove(s.Path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return wire.Errorf(wire.ErrNotFound, "chunkserver %s: block %s not found", s.name, wire.BlockName(id))
	}
	if err != nil {
		return wire.Errorf(wire.ErrIO, "chunkserver %s: delete %s: %v", s.name, wire.BlockName(id), err)
	}
	s.trailers.invalidate(id)
	s.mu.Lock()
	m, _ := s.idx.remove(id)
	s.mu.Unlock()
	if err := syncDir(s.leafDir(id)); err != nil {
		return wire.Errorf(wire.ErrIO, "chunkserver %s: delete %s: %v", s.name, wire.BlockName(id), err)
	}
	if s.changes != nil {
		e := wire.BinlogEntry{Op: wire.BinlogDelete, ID: id, Size: m.size, Time: time.Now().UnixNano()}
		if _, err := s.changes.Append(context.WithoutCancel(ctx), e); err != nil {
			return fmt.Errorf("chunkserver: delete %s: %w", wire.BlockName(id), err)
		}
	}
	return nil
}

// List returns up to limit blocks with ids above after in id order; when
// before is not zero only blocks last written before that Unix-nanosecond
// time. More is set when further matching blocks exist.
func (s *DiskStore) List(ctx context.Context, after uint64, limit int, before int64) (wire.BlockList, error) {
	if err := ctx.Err(); err != nil {
		return wire.BlockList{}, err
	}
	if limit <= 0 {
		return wire.BlockList{}, wire.Errorf(wire.ErrInvalid, "chunkserver: list: limit %d", limit)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return wire.BlockList{}, ErrClosed
	}
	list := wire.BlockList{Blocks: make([]wire.BlockInfo, 0, min(limit, 1024))}
	s.idx.scan(after, func(m blockMeta) bool {
		if before != 0 && m.mtime >= before {
			return true
		}
		if len(list.Blocks) == limit {
			list.More = true
			return false
		}
		list.Blocks = append(list.Blocks, wire.BlockInfo{ID: m.id, Size: m.size, Mtime: m.mtime})
		return true
	})
	return list, nil
}

// Usage returns the bytes and blocks the store holds.
func (s *DiskStore) Usage() Usage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Usage{Used: s.idx.used, Blocks: s.idx.count}
}

// DiskSpace reports the file system's size and available bytes.
func (s *DiskStore) DiskSpace() (DiskSpace, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return DiskSpace{}, wire.Errorf(wire.ErrIO, "chunkserver %s: statfs: %v", s.name, err)
	}
	bsize := uint64(st.Bsize)
	return DiskSpace{Capacity: uint64(st.Blocks) * bsize, Avail: uint64(st.Bavail) * bsize}, nil
}

// Reserve returns the bytes a PUT must leave free.
func (s *DiskStore) Reserve() uint64 { return s.reserve }

func (s *DiskStore) checkOpen() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Close waits for puts and deletes in progress (so none is cut off between
// its block write and its binlog entry) and marks the store closed; later
// calls fail with ErrClosed. Readers holding a BlockFile may finish with it.
func (s *DiskStore) Close() error {
	for i := range s.stripes {
		s.stripes[i].Lock()
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for i := range s.stripes {
		s.stripes[i].Unlock()
	}
	return nil
}

// syncDir fsyncs a directory so that entries created, renamed or removed
// in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
