package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

// TestReadBlock: in-process reads verify like a GET, refuse ranges past
// the block, name the block and server on damage, and turn a closed
// server into UNAVAILABLE so a client tries another member.
func TestReadBlock(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*wire.CRCBlock/16+5)
	if _, err := s.store.Put(ctx, 0x77, data); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, int64(len(data))}, {wire.CRCBlock, wire.CRCBlock}, {1000, 70_000}, {int64(len(data)) - 1, 1}} {
		got, err := s.ReadBlock(ctx, 0x77, r[0], r[1], make([]byte, r[1]))
		if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadBlock %v: %v", r, err)
		}
	}
	for _, r := range [][2]int64{{0, int64(len(data)) + 1}, {-1, 10}, {10, 0}, {int64(len(data)), 1}} {
		if _, err := s.ReadBlock(ctx, 0x77, r[0], r[1], nil); !errors.Is(err, wire.ErrRange) {
			t.Errorf("ReadBlock %v: %v, want RANGE", r, err)
		}
	}
	if _, err := s.ReadBlock(ctx, 0x78, 0, 1, nil); !errors.Is(err, wire.ErrNotFound) {
		t.Errorf("ReadBlock of a missing block: %v, want NOTFOUND", err)
	}
	flipByte(t, s.store.(*DiskStore).Path(0x77), wire.CRCBlock+3)
	_, err = s.ReadBlock(ctx, 0x77, wire.CRCBlock, 10, nil)
	if !errors.Is(err, wire.ErrChecksum) || !strings.Contains(err.Error(), wire.BlockName(0x77)) || !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("ReadBlock of a damaged piece: %v, want CHECKSUM naming the block and %s", err, s.Addr())
	}
	if got, err := s.ReadBlock(ctx, 0x77, 0, 100, nil); err != nil || !bytes.Equal(got, data[:100]) {
		t.Errorf("ReadBlock of an undamaged piece of a damaged block: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadBlock(ctx, 0x77, 0, 100, nil); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("ReadBlock after Close: %v, want UNAVAILABLE", err)
	}
}
