package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// segment is one stretch of a response body: literal bytes (multipart part
// headers) or n bytes of the file from off.
type segment struct {
	lit    []byte
	off, n int64
}

// firstPiece bounds the first read of each range, so that time to first
// byte is one small block read however large PieceSize is.
const firstPiece = 128 << 10

// piece is what the fetcher hands the writer: bytes to send, or the error
// that ends the stream. buf is the pooled buffer b lives in (nil for
// literals), returned to the pool once b is sent.
type piece struct {
	b   []byte
	buf *[]byte
	err error
}

// bodyStream is a response body read from a file by a bounded pipeline.
//
// One fetcher goroutine walks the segments, reads the file in pieces and
// sends them on a channel holding at most ReadAhead bytes of pieces; the
// fasthttp connection goroutine calls Read, which takes pieces off the
// channel. So the memory one response pins is bounded (channel + the piece
// being read + the piece being sent) however slow the client is, and a
// seek costs a read at the range start, never from the file start.
//
// Ownership: the fetcher owns the file and closes it when it exits. Close
// (called by fasthttp once the body is written or the write failed, and
// by the server's shutdown through the base context) cancels the fetcher
// and waits for it, so after Close no goroutine of the stream is left.
type bodyStream struct {
	s      *Server
	file   File
	segs   []segment
	total  int64 // bytes the response promised
	ch     chan piece
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the fetcher has exited

	// Set by the caller before Read is first called; read by Read/Close
	// on the connection goroutine only.
	conn  net.Conn      // to extend the write deadline per piece; nil in tests
	stall time.Duration // write deadline extension
	onEnd func(sent int64, err error)

	// Owned by the goroutine calling Read and Close.
	cur     []byte
	curBuf  *[]byte
	sent    int64
	err     error
	closing sync.Once
}

// newBodyStream starts the fetcher for segs of f. The stream owns f from
// here on, even when it fails.
func (s *Server) newBodyStream(f File, segs []segment, total int64) *bodyStream {
	size := s.cfg.pieceSize()
	slots := max(1, int(s.cfg.ReadAhead/int64(size)))
	ctx, cancel := context.WithCancel(s.base)
	bs := &bodyStream{
		s: s, file: f, segs: segs, total: total,
		ch: make(chan piece, slots), ctx: ctx, cancel: cancel,
		done: make(chan struct{}),
	}
	s.metrics.activeStreams.Inc()
	s.streams.Add(1)
	go bs.fetch(size)
	return bs
}

// fetch is the fetcher goroutine: it fills the channel in order and closes
// it at the end, after an error or when the stream is cancelled.
func (bs *bodyStream) fetch(pieceSize int) {
	defer bs.s.streams.Done()
	defer close(bs.done)
	defer close(bs.ch)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(bs.ctx), bs.s.cfg.ShutdownTimeout)
		defer cancel()
		if err := bs.file.Close(cctx); err != nil {
			bs.s.log.Debug("close streamed file", "err", err)
		}
	}()
	send := func(p piece) bool {
		select {
		case bs.ch <- p:
			return true
		case <-bs.ctx.Done():
			bs.s.putBuf(p.buf)
			return false
		}
	}
	for _, seg := range bs.segs {
		if seg.lit != nil {
			if !send(piece{b: seg.lit}) {
				return
			}
			continue
		}
		for off, end := seg.off, seg.off+seg.n; off < end; {
			buf := bs.s.getBuf(pieceSize)
			want := int(min(int64(pieceSize), end-off))
			if off == seg.off {
				// A small first piece: its first byte leaves after one
				// page fetch while the client reads around it.
				want = min(want, firstPiece)
			}
			n, err := bs.file.ReadAt(bs.ctx, (*buf)[:want], off)
			if n == want {
				err = nil
			} else if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: read %d of %d bytes at offset %d", ErrShortRead, n, want, off)
			}
			if err != nil {
				bs.s.putBuf(buf)
				if bs.ctx.Err() == nil {
					send(piece{err: err})
				}
				return
			}
			if !send(piece{b: (*buf)[:n], buf: buf}) {
				return
			}
			off += int64(n)
		}
	}
}

// first waits for the first piece of a non-empty body so that a file that
// cannot be read at all fails with an error status instead of a cut 200.
func (bs *bodyStream) first(ctx context.Context) error {
	if bs.total == 0 {
		return nil
	}
	select {
	case p, ok := <-bs.ch:
		if !ok {
			return fmt.Errorf("%w: stream ended before its first byte", ErrAborted)
		}
		if p.err != nil {
			bs.err = p.err
			return p.err
		}
		bs.cur, bs.curBuf = p.b, p.buf
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrAborted, ctx.Err())
	}
}

// next makes the next piece current once the current one is sent: false
// with bs.err set when the stream failed, false with a nil bs.err at the
// end of a complete body.
func (bs *bodyStream) next() bool {
	if bs.err != nil {
		return false
	}
	for len(bs.cur) == 0 {
		bs.s.putBuf(bs.curBuf)
		bs.cur, bs.curBuf = nil, nil
		pc, ok := <-bs.ch
		switch {
		case !ok && bs.sent == bs.total:
			return false
		case !ok:
			bs.err = fmt.Errorf("%w after %d of %d bytes", ErrAborted, bs.sent, bs.total)
			return false
		case pc.err != nil:
			bs.err = pc.err
			return false
		}
		bs.cur, bs.curBuf = pc.b, pc.buf
	}
	if bs.conn != nil {
		// The client has this long to take the bytes we hand over now.
		_ = bs.conn.SetWriteDeadline(time.Now().Add(bs.stall))
	}
	return true
}

// sentBytes accounts for n bytes of the current piece handed over.
func (bs *bodyStream) sentBytes(n int) {
	bs.cur = bs.cur[n:]
	bs.sent += int64(n)
	bs.s.metrics.bytesSent.Add(float64(n))
}

// WriteTo implements io.WriterTo, which fasthttp prefers to Read: each
// piece goes to the connection's writer whole, so a 1 MiB piece leaves in
// one write(2) instead of being copied through a 32 KiB buffer.
func (bs *bodyStream) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for bs.next() {
		n, err := w.Write(bs.cur)
		bs.sentBytes(n)
		written += int64(n)
		if err != nil {
			bs.err = err
			return written, err
		}
	}
	return written, bs.err
}

// Read implements io.Reader, for writers that are not fasthttp's.
func (bs *bodyStream) Read(p []byte) (int, error) {
	if !bs.next() {
		if bs.err != nil {
			return 0, bs.err
		}
		return 0, io.EOF
	}
	n := copy(p, bs.cur)
	bs.sentBytes(n)
	return n, nil
}

// Close stops the fetcher, waits for it (it closes the file) and returns
// the buffers. fasthttp calls it once the body is written or failed.
func (bs *bodyStream) Close() error {
	bs.closing.Do(func() {
		bs.cancel()
		for p := range bs.ch { // drain so pooled buffers go back
			bs.s.putBuf(p.buf)
		}
		<-bs.done
		bs.s.putBuf(bs.curBuf)
		bs.cur, bs.curBuf = nil, nil
		bs.s.metrics.activeStreams.Dec()
		if bs.onEnd != nil {
			err := bs.err
			if err == nil && bs.sent != bs.total {
				err = fmt.Errorf("%w after %d of %d bytes", ErrAborted, bs.sent, bs.total)
			}
			bs.onEnd(bs.sent, err)
		}
	})
	return nil
}
