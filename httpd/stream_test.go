package httpd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// newTestServer is a Server that is never Run, for driving streams
// directly; Close releases it.
func newTestServer(t *testing.T, mod func(*Config)) (*Server, *fakeFS) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	fs := newFakeFS()
	s, err := New(cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, fs
}

func randomBytes(n int, seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func openFake(t *testing.T, fs *fakeFS, p string) File {
	t.Helper()
	a, err := fs.Resolve(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(context.Background(), a.Ino, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// eventually polls cond until it holds; the test's own timeout bounds it.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBodyStreamBounded: the fetcher never runs more than ReadAhead plus
// two pieces ahead of the reader, however the reader paces itself.
func TestBodyStreamBounded(t *testing.T) {
	const piece, ahead = 1024, 4096
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = piece, ahead })
	data := randomBytes(64*piece, 1)
	fs.put(t, "/f", data)
	bs := s.newBodyStream(openFake(t, fs, "/f"), []segment{{off: 0, n: int64(len(data))}}, int64(len(data)))

	// Nobody reads: the fetcher fills the channel (ahead/piece slots), reads
	// one more piece and blocks on sending it.
	eventually(t, "fetcher fills its window", func() bool { return fs.reads.Load() == ahead/piece+1 })
	var got bytes.Buffer
	buf := make([]byte, 700) // not a multiple of the piece
	for {
		n, err := bs.Read(buf)
		got.Write(buf[:n])
		if read := fs.bytesRead.Load(); read > int64(got.Len())+ahead+2*piece {
			t.Fatalf("fetched %d bytes with %d consumed: window exceeded", read, got.Len())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("streamed bytes differ")
	}
	_ = bs.Close()
	if fs.open.Load() != 0 {
		t.Fatalf("%d files left open", fs.open.Load())
	}
}

// TestBodyStreamCloseEarly: closing a stream nobody finished stops the
// fetcher and closes the file.
func TestBodyStreamCloseEarly(t *testing.T) {
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = 512, 2048 })
	fs.put(t, "/f", randomBytes(100_000, 2))
	bs := s.newBodyStream(openFake(t, fs, "/f"), []segment{{off: 0, n: 100_000}}, 100_000)
	if _, err := bs.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = bs.Close()
	_ = bs.Close() // idempotent
	s.streams.Wait()
	if fs.open.Load() != 0 {
		t.Fatal("file left open")
	}
	if fs.bytesRead.Load() >= 100_000 {
		t.Fatal("fetcher read the whole file for a closed stream")
	}
}

// TestBodyStreamSegments: ranges start reading at their start, and literal
// segments come out in order.
func TestBodyStreamSegments(t *testing.T) {
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = 300, 900 })
	data := randomBytes(10_000, 3)
	fs.put(t, "/f", data)
	fs.resetReads()
	segs := []segment{{lit: []byte("A")}, {off: 7000, n: 1000}, {lit: []byte("B")}, {off: 9990, n: 10}}
	bs := s.newBodyStream(openFake(t, fs, "/f"), segs, 1012)
	got, err := io.ReadAll(bs)
	_ = bs.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte("A"), data[7000:8000]...), 'B'), data[9990:]...)
	if !bytes.Equal(got, want) {
		t.Fatal("segment bytes differ")
	}
	if m := fs.minOff.Load(); m != 7000 {
		t.Fatalf("lowest offset read %d, want 7000", m)
	}
}

// TestBodyStreamShortFile: a file shorter than promised ends the stream
// with ErrShortRead after the bytes it has.
func TestBodyStreamShortFile(t *testing.T) {
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = 256, 1024 })
	fs.put(t, "/f", randomBytes(1000, 4))
	bs := s.newBodyStream(openFake(t, fs, "/f"), []segment{{off: 0, n: 2000}}, 2000)
	got, err := io.ReadAll(bs)
	_ = bs.Close()
	if !errors.Is(err, ErrShortRead) {
		t.Fatalf("err %v, want ErrShortRead", err)
	}
	if len(got) != 768 { // three whole pieces; the fourth came up short
		t.Fatalf("got %d bytes before the error", len(got))
	}
	if fs.open.Load() != 0 {
		t.Fatal("file left open")
	}
}

// TestBodyStreamFirstError: a file that cannot be read fails first().
func TestBodyStreamFirstError(t *testing.T) {
	s, fs := newTestServer(t, nil)
	fs.put(t, "/f", randomBytes(1000, 5))
	boom := errors.New("boom")
	fs.readErr.Store(&boom)
	bs := s.newBodyStream(openFake(t, fs, "/f"), []segment{{off: 0, n: 1000}}, 1000)
	if err := bs.first(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("first: %v", err)
	}
	_ = bs.Close()
	if fs.open.Load() != 0 {
		t.Fatal("file left open")
	}
}

// TestBodyStreamServerStop: stopping the server aborts a stream mid-way.
func TestBodyStreamServerStop(t *testing.T) {
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = 256, 512 })
	fs.put(t, "/f", randomBytes(100_000, 6))
	bs := s.newBodyStream(openFake(t, fs, "/f"), []segment{{off: 0, n: 100_000}}, 100_000)
	if err := bs.first(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s.streams.Wait()
	_, err := io.ReadAll(bs)
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("read after stop: %v", err)
	}
	_ = bs.Close()
	if fs.open.Load() != 0 {
		t.Fatal("file left open")
	}
}

// TestBodyStreamSmallFirstPiece: each range starts with a read of at most
// firstPiece bytes, so its first byte does not wait for a whole PieceSize
// read; the rest goes in full pieces, and WriteTo hands over every byte.
func TestBodyStreamSmallFirstPiece(t *testing.T) {
	const piece = 1 << 20
	s, fs := newTestServer(t, func(c *Config) { c.PieceSize, c.ReadAhead = piece, 4*piece })
	data := randomBytes(3*piece, 3)
	fs.put(t, "/f", data)
	segs := []segment{{off: 1000, n: 2 * piece}, {lit: []byte("--sep--")}, {off: 5, n: firstPiece + 1}}
	bs := s.newBodyStream(openFake(t, fs, "/f"), segs, 2*piece+7+firstPiece+1)
	var got bytes.Buffer
	n, err := bs.WriteTo(&got)
	if err != nil || n != int64(got.Len()) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	want := append(append(append([]byte{}, data[1000:1000+2*piece]...), "--sep--"...), data[5:5+firstPiece+1]...)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatal("streamed bytes differ")
	}
	_ = bs.Close()
	// Segment one: firstPiece, then pieces of at most 1 MiB; segment two:
	// firstPiece, then 1 byte.
	wantReads := int64(1 + (2*piece-firstPiece+piece-1)/piece + 2)
	if got := fs.reads.Load(); got != wantReads {
		t.Fatalf("%d file reads, want %d", got, wantReads)
	}
}
