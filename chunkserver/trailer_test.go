package chunkserver

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// blockFileBytes returns the full block file for data.
func blockFileBytes(data []byte) []byte {
	return appendTrailer(append([]byte(nil), data...), data, castagnoli())
}

// fileTail returns what a reader preads: the last maxTrailerLen bytes.
func fileTail(file []byte) []byte {
	return file[len(file)-min(len(file), maxTrailerLen):]
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestTrailerRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tab := castagnoli()
	for _, n := range []int{0, 1, 100, wire.CRCBlock - 1, wire.CRCBlock, wire.CRCBlock + 1, 3*wire.CRCBlock + 17, wire.MaxBlockSize - 1, wire.MaxBlockSize} {
		data := randBytes(r, n)
		file := blockFileBytes(data)
		if int64(len(file)) != fileSizeFor(int64(n)) {
			t.Fatalf("n=%d: file is %d bytes, fileSizeFor says %d", n, len(file), fileSizeFor(int64(n)))
		}
		tr, err := decodeTrailer(fileTail(file), int64(len(file)), tab)
		if err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if tr.length != int64(n) || int64(len(tr.crcs)) != pieceCount(int64(n)) {
			t.Fatalf("n=%d: decoded length %d with %d crcs", n, tr.length, len(tr.crcs))
		}
		for i, c := range tr.crcs {
			end := min((i+1)*wire.CRCBlock, n)
			if want := crc32.Checksum(data[i*wire.CRCBlock:end], tab); c != want {
				t.Fatalf("n=%d piece %d: crc %08x, want %08x", n, i, c, want)
			}
		}
		// A longer tail (reaching into the data) decodes the same.
		if _, err := decodeTrailer(file, int64(len(file)), tab); err != nil {
			t.Fatalf("n=%d: decode of the whole file: %v", n, err)
		}
	}
}

func TestDataLenForFileSize(t *testing.T) {
	for n := int64(0); n <= 5*wire.CRCBlock; n++ {
		got, ok := dataLenForFileSize(fileSizeFor(n))
		if !ok || got != n {
			t.Fatalf("dataLenForFileSize(fileSizeFor(%d)) = %d, %v", n, got, ok)
		}
	}
	valid := 0
	for size := int64(-1); size <= 3*wire.CRCBlock; size++ {
		n, ok := dataLenForFileSize(size)
		if ok {
			valid++
			if fileSizeFor(n) != size {
				t.Fatalf("size %d: got n=%d whose file is %d bytes", size, n, fileSizeFor(n))
			}
		}
	}
	want := 0
	for n := int64(0); fileSizeFor(n) <= 3*wire.CRCBlock; n++ {
		want++
	}
	if valid != want {
		t.Fatalf("%d sizes decoded, want %d", valid, want)
	}
	if _, ok := dataLenForFileSize(fileSizeFor(wire.MaxBlockSize + 1)); ok {
		t.Fatal("a size beyond the maximum block decoded")
	}
}

func TestDecodeTrailerRejectsDamage(t *testing.T) {
	tab := castagnoli()
	r := rand.New(rand.NewPCG(3, 4))
	data := randBytes(r, 2*wire.CRCBlock+5)
	file := blockFileBytes(data)
	trailerStart := len(data)
	for i := trailerStart; i < len(file); i++ {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), file...)
			bad[i] ^= bit
			if _, err := decodeTrailer(fileTail(bad), int64(len(bad)), tab); !errors.Is(err, ErrTrailer) {
				t.Fatalf("flip %#x at trailer byte %d: err %v, want ErrTrailer", bit, i-trailerStart, err)
			}
		}
	}
	cases := map[string]struct {
		tail []byte
		size int64
	}{
		"empty":           {nil, 0},
		"short":           {file[len(file)-10:], 10},
		"truncated file":  {fileTail(file[:len(file)-1]), int64(len(file) - 1)},
		"size too large":  {fileTail(file), int64(len(file) + 1)},
		"tail > filesize": {fileTail(file), 5},
		"zeros":           {make([]byte, 100), 100},
	}
	for name, c := range cases {
		if _, err := decodeTrailer(c.tail, c.size, tab); !errors.Is(err, ErrTrailer) {
			t.Errorf("%s: err %v, want ErrTrailer", name, err)
		}
	}
	// A well-formed footer whose length exceeds the maximum block size.
	foot := make([]byte, footerLen)
	binary.LittleEndian.PutUint64(foot, wire.MaxBlockSize+1)
	binary.LittleEndian.PutUint16(foot[8:], formatVersion)
	copy(foot[16:], blockMagic)
	if _, err := decodeTrailer(foot, fileSizeFor(wire.MaxBlockSize+1), tab); !errors.Is(err, ErrTrailer) {
		t.Errorf("oversized length: err %v, want ErrTrailer", err)
	}
}

// FuzzDecodeTrailer feeds random tails and sizes to the decoder: it must
// never panic, and whatever it accepts must be self-consistent.
func FuzzDecodeTrailer(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, wire.CRCBlock, wire.CRCBlock + 1, 5 * wire.CRCBlock} {
		file := blockFileBytes(randBytes(r, n))
		f.Add(fileTail(file), int64(len(file)))
	}
	f.Add([]byte("RFSB"), int64(4))
	f.Add([]byte{}, int64(0))
	f.Add(make([]byte, footerLen), int64(-1))
	tab := castagnoli()
	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		tr, err := decodeTrailer(tail, size, tab)
		if err != nil {
			if !errors.Is(err, ErrTrailer) {
				t.Fatalf("error %v does not match ErrTrailer", err)
			}
			return
		}
		if tr.length < 0 || tr.length > wire.MaxBlockSize {
			t.Fatalf("accepted length %d", tr.length)
		}
		if fileSizeFor(tr.length) != size {
			t.Fatalf("accepted length %d for a %d-byte file", tr.length, size)
		}
		if int64(len(tr.crcs)) != pieceCount(tr.length) {
			t.Fatalf("accepted %d crcs for %d bytes", len(tr.crcs), tr.length)
		}
	})
}
