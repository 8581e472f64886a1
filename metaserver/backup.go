package metaserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// A backup is the namespace as one consistent snapshot (the stream a
// resyncing follower installs: a JSON header line with the op-log seq and
// epoch it reflects, then every key but the op log), followed by the
// sha256 of that stream and backupMagic. The trailer makes a truncated or
// damaged file fail at restore instead of restoring part of a namespace
// (a stream cut at a record boundary would otherwise read as shorter).
const backupMagic = "RLFSBK01"

const backupTrailer = sha256.Size + len(backupMagic)

// The restored database jumps its block-id and inode counters, and its
// epoch, past anything the cluster can have handed out or seen after the
// backup was taken, so no id is ever used twice (chunkservers still hold
// blocks written after the backup; the collector of unreferenced blocks
// removes them) and chunkservers, which refuse a metaserver epoch older
// than the newest they saw, accept the restored leader.
const (
	restoreBlockJump = 1 << 40 // ids are leased in ranges; 2^40 blocks of 4 MiB is 4 ZiB
	restoreInoJump   = 1 << 32
	restoreEpochJump = 1 << 20 // one per failover
)

// BackupInfo describes a backup.
type BackupInfo struct {
	Seq   uint64 `json:"seq"`   // the last op-log entry it holds
	Epoch uint64 `json:"epoch"` // the leader's epoch when it was taken (0 without failover)
	Bytes int    `json:"bytes"` // size of the file
}

// backup returns the database as a backup file (see backupMagic).
func (c *core) backup(epoch uint64) ([]byte, uint64, error) {
	data, seq, err := c.snapshot(epoch)
	if err != nil {
		return nil, 0, err
	}
	sum := sha256.Sum256(data)
	data = append(data, sum[:]...)
	data = append(data, backupMagic...)
	return data, seq, nil
}

// CheckBackup verifies a backup file's trailer and header and returns
// what it holds; the snapshot stream without the trailer is returned too.
func CheckBackup(data []byte) (BackupInfo, []byte, error) {
	if len(data) < backupTrailer || string(data[len(data)-len(backupMagic):]) != backupMagic {
		return BackupInfo{}, nil, fmt.Errorf("%w: not a reelfs namespace backup (no %s trailer; truncated?)", ErrCorrupt, backupMagic)
	}
	snap := data[:len(data)-backupTrailer]
	sum := sha256.Sum256(snap)
	if !bytes.Equal(sum[:], data[len(snap):len(snap)+sha256.Size]) {
		return BackupInfo{}, nil, fmt.Errorf("%w: backup checksum mismatch: the file is damaged", ErrCorrupt)
	}
	nl := bytes.IndexByte(snap, '\n')
	if nl < 0 {
		return BackupInfo{}, nil, fmt.Errorf("%w: backup without a header", ErrCorrupt)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(snap[:nl], &hdr); err != nil {
		return BackupInfo{}, nil, fmt.Errorf("%w: backup header: %v", ErrCorrupt, err)
	}
	return BackupInfo{Seq: hdr.Seq, Epoch: hdr.Epoch, Bytes: len(data)}, snap, nil
}

// ErrNotEmpty is returned by Restore into a directory that already holds
// a metaserver database or node id.
var ErrNotEmpty = errors.New("metaserver: restore: directory already holds a metaserver")

// Restore writes a backup into dir, which must not hold a metaserver yet
// (a fresh --dir): the namespace as of the backup, with the block-id and
// inode counters and the epoch moved past anything handed out since (see
// restoreBlockJump). A metaserver started on dir then serves it; with
// --ha it gets a new node id, so it may lead only once Consul's state key
// is gone (docs/operations.md, "Back up and restore the namespace").
func Restore(dir string, data []byte, log *slog.Logger) (BackupInfo, error) {
	info, snap, err := CheckBackup(data)
	if err != nil {
		return info, err
	}
	for _, name := range []string{"meta", "node-id"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return info, fmt.Errorf("%w: %s exists", ErrNotEmpty, filepath.Join(dir, name))
		} else if !errors.Is(err, os.ErrNotExist) {
			return info, fmt.Errorf("metaserver: restore: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, fmt.Errorf("metaserver: restore: %w", err)
	}
	c, err := openCore(coreConfig{Dir: dir, SessionTTL: 30 * time.Second, HeartbeatTimeout: 6 * time.Second, Logger: log})
	if err != nil {
		return info, err
	}
	if _, err := c.installSnapshot(snap); err != nil {
		c.close()
		return info, fmt.Errorf("metaserver: restore: %w", err)
	}
	if err := c.afterRestore(info.Epoch); err != nil {
		c.close()
		return info, err
	}
	if err := c.syncMarker(); err != nil {
		c.close()
		return info, fmt.Errorf("metaserver: restore: sync: %w", err)
	}
	return info, c.close()
}

// afterRestore writes the restore as one op-log entry: the counters
// jumped, and with failover an epoch record far past the backup's.
func (c *core) afterRestore(epoch uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.begin("restore")
	t.ctr.nextBlock += restoreBlockJump
	t.ctr.nextIno += restoreInoJump
	if epoch > 0 {
		t.b.Put(keyEpoch(epoch+restoreEpochJump), binary.BigEndian.AppendUint64(nil, t.ctr.seq+1))
	}
	if err := t.commit(); err != nil {
		return fmt.Errorf("metaserver: restore: %w", err)
	}
	return nil
}

// serveBackup answers GET wire.PathBackup (with the cluster secret) on a
// metaserver that runs alone or leads: a follower may lag the leader, so
// it refers the caller on (NOTLEADER).
func (s *Server) serveBackup(rc *fasthttp.RequestCtx) {
	var epoch uint64
	if h := s.ha; h != nil {
		h.mu.Lock()
		leading := h.leading
		epoch = h.epoch
		h.mu.Unlock()
		if !leading {
			wire.ReplyError(rc, h.notLeader())
			return
		}
	}
	data, seq, err := s.core.backup(epoch)
	if err != nil {
		wire.ReplyError(rc, err)
		return
	}
	s.log.Info("serving a backup", "seq", seq, "epoch", epoch, "bytes", len(data), "to", rc.RemoteAddr().String())
	rc.SetContentType("application/octet-stream")
	rc.SetBody(data)
}
