package chunkserver

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/reelfs/reelfs/internal/wire"
)

// Block file layout (all integers little-endian):
//
//	data     n bytes, the block as the client sent it
//	crcs     k = ceil(n / wire.CRCBlock) CRC32C values, one per 64 KiB piece
//	footer   length  uint64  n
//	         version uint16  formatVersion
//	         flags   uint16  0 (reserved)
//	         sum     uint32  CRC32C of crcs and the 12 footer bytes before it
//	         magic   [4]byte "RFSB"
//
// The footer sits at the very end so a reader finds it with one pread of
// the file's last bytes, which also bring the whole CRC table (at most 64
// entries). The file size is a function of n alone (fileSizeFor), so a
// size that fits no n is damage, found without reading the file.
const (
	footerLen     = 20
	formatVersion = 1
	blockMagic    = "RFSB"
	maxPieces     = wire.MaxBlockSize / wire.CRCBlock
	// maxTrailerLen is the longest trailer: a full CRC table and the footer.
	maxTrailerLen = 4*maxPieces + footerLen
)

// castagnoli returns the CRC32C table. crc32.MakeTable caches this table
// (and picks the SSE4.2 implementation), so the call is cheap.
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// trailer is the decoded tail of a block file.
type trailer struct {
	length int64    // data bytes
	crcs   []uint32 // one per wire.CRCBlock piece
}

// pieceCount is the number of 64 KiB pieces of n data bytes.
func pieceCount(n int64) int64 { return (n + wire.CRCBlock - 1) / wire.CRCBlock }

// fileSizeFor is the size of the block file holding n data bytes.
func fileSizeFor(n int64) int64 { return n + 4*pieceCount(n) + footerLen }

// dataLenForFileSize inverts fileSizeFor: the data length of a block file
// of size bytes, or false when no data length gives that size. It lets the
// startup scan size every block from a stat alone.
func dataLenForFileSize(size int64) (int64, bool) {
	m := size - footerLen
	if m < 0 {
		return 0, false
	}
	// m = n + 4k with k = ceil(n/CRCBlock); every piece adds CRCBlock+4
	// bytes, so k = ceil(m/(CRCBlock+4)).
	k := (m + wire.CRCBlock + 3) / (wire.CRCBlock + 4)
	n := m - 4*k
	if n < 0 || n > wire.MaxBlockSize || fileSizeFor(n) != size {
		return 0, false
	}
	return n, true
}

// appendTrailer appends the CRC table and footer for data to dst.
func appendTrailer(dst, data []byte, tab *crc32.Table) []byte {
	start := len(dst)
	for off := 0; off < len(data); off += wire.CRCBlock {
		end := min(off+wire.CRCBlock, len(data))
		dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(data[off:end], tab))
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(data)))
	dst = binary.LittleEndian.AppendUint16(dst, formatVersion)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], tab))
	return append(dst, blockMagic...)
}

// decodeTrailer decodes the trailer of a block file of fileSize bytes from
// tail, the file's last min(fileSize, maxTrailerLen) bytes (or more). Any
// inconsistency is an ErrTrailer error; decodeTrailer never panics.
func decodeTrailer(tail []byte, fileSize int64, tab *crc32.Table) (trailer, error) {
	if fileSize < footerLen || int64(len(tail)) < footerLen || int64(len(tail)) > fileSize {
		return trailer{}, fmt.Errorf("%w: file of %d bytes is shorter than a footer", ErrTrailer, fileSize)
	}
	foot := tail[len(tail)-footerLen:]
	if string(foot[16:20]) != blockMagic {
		return trailer{}, fmt.Errorf("%w: no block magic at the end of the file", ErrTrailer)
	}
	if v := binary.LittleEndian.Uint16(foot[8:10]); v != formatVersion {
		return trailer{}, fmt.Errorf("%w: format version %d, want %d", ErrTrailer, v, formatVersion)
	}
	if f := binary.LittleEndian.Uint16(foot[10:12]); f != 0 {
		return trailer{}, fmt.Errorf("%w: unknown flags %#x", ErrTrailer, f)
	}
	length := binary.LittleEndian.Uint64(foot[0:8])
	if length > wire.MaxBlockSize {
		return trailer{}, fmt.Errorf("%w: data length %d exceeds the maximum block size", ErrTrailer, length)
	}
	n := int64(length)
	if want := fileSizeFor(n); want != fileSize {
		return trailer{}, fmt.Errorf("%w: file is %d bytes, a block of %d bytes needs %d", ErrTrailer, fileSize, n, want)
	}
	k := pieceCount(n)
	tableLen := int(4 * k)
	if len(tail) < tableLen+footerLen {
		return trailer{}, fmt.Errorf("%w: %d trailer bytes cannot hold %d checksums", ErrTrailer, len(tail), k)
	}
	table := tail[len(tail)-footerLen-tableLen : len(tail)-footerLen]
	sum := crc32.Update(crc32.Checksum(table, tab), tab, foot[:12])
	if got := binary.LittleEndian.Uint32(foot[12:16]); got != sum {
		return trailer{}, fmt.Errorf("%w: trailer checksum %08x, computed %08x", ErrTrailer, got, sum)
	}
	t := trailer{length: n, crcs: make([]uint32, k)}
	for i := range t.crcs {
		t.crcs[i] = binary.LittleEndian.Uint32(table[4*i:])
	}
	return t, nil
}
