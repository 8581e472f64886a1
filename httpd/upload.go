package httpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// uploadPrefix starts the temporary name an upload is written under, in
// the target's directory, before it is renamed into place. A crash of the
// server mid-upload can leave one behind; nothing else does.
const uploadPrefix = ".reelfs-upload-"

// checkWrite enforces the write rules: with a Secret, a Bearer token equal
// to it (401 otherwise); without one, AllowAnonymousWrites (403 otherwise).
func (s *Server) checkWrite(x *exchange) bool {
	switch status, why := s.writeRefusal(x.ctx); status {
	case 0:
		return true
	case fasthttp.StatusUnauthorized:
		x.ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="reelfs"`)
		fallthrough
	default:
		s.fail(x, status, why)
		return false
	}
}

// writeRefusal decides the write rules for a request: 0 when it may
// write, else the status and reason to refuse it with.
func (s *Server) writeRefusal(ctx *fasthttp.RequestCtx) (int, string) {
	switch {
	case s.cfg.Secret != "" && !wire.Authorized(ctx, s.cfg.Secret):
		return fasthttp.StatusUnauthorized, "writes need Authorization: Bearer <cluster secret>"
	case s.cfg.Secret == "" && !s.cfg.AllowAnonymousWrites:
		return fasthttp.StatusForbidden, "writes need a cluster secret"
	}
	return 0, ""
}

// expect answers "Expect: 100-continue" before any body is read: an
// upload the write rules refuse gets its final status (401 or 403) at
// once. Answering 100 first and refusing after made clients such as curl
// -T race the refusal with their body and sometimes see only the 100.
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if !ctx.IsPut() {
		return fasthttp.StatusContinue
	}
	if status, _ := s.writeRefusal(ctx); status != 0 {
		return status
	}
	return fasthttp.StatusContinue
}

// writeTarget cleans the path of a PUT or DELETE: not the root, outside
// the reserved prefixes, and without a trailing slash unless allowDir.
func (s *Server) writeTarget(x *exchange, allowDir bool) (string, bool) {
	p, dir, err := cleanPath(x.path)
	switch {
	case err != nil:
		s.failErr(x, fasthttp.StatusBadRequest, err)
	case p == "/" || dir && !allowDir:
		s.fail(x, fasthttp.StatusBadRequest, x.method+" needs a file path, not a directory")
	case under(p, reservedPrefix) || under(p, playerPrefix):
		s.fail(x, fasthttp.StatusBadRequest, "path is reserved for the server (/-/ and /player/)")
	default:
		return p, true
	}
	return "", false
}

// currentValidators resolves p for the preconditions of a write; a missing
// file has no validators.
func (s *Server) currentValidators(x *exchange, p string) (wire.Attr, validators, bool) {
	attr, err := s.fs.Resolve(x.rctx, p)
	if errors.Is(err, wire.ErrNotFound) {
		return wire.Attr{}, validators{}, true
	}
	if err != nil {
		s.failFS(x, "resolve", err)
		return wire.Attr{}, validators{}, false
	}
	return attr, validators{exists: true, etag: etagOf(attr), modTime: lastModified(attr, time.Now())}, true
}

// servePut stores the request body at the path: 201 when it creates the
// file, 204 when it replaces one. The body is streamed into a temporary
// file in the same directory, in UploadPiece writes, and renamed over the
// target only once every byte is written and committed; an upload cut
// short removes its temporary file, so the name never shows a partial
// body. The parent directory must exist (409 otherwise: PUT does not
// invent directories).
func (s *Server) servePut(x *exchange) {
	if !s.checkWrite(x) {
		return
	}
	p, ok := s.writeTarget(x, false)
	if !ok {
		return
	}
	parent, name := splitPath(p)
	pattr, err := s.fs.Resolve(x.rctx, parent)
	switch {
	case errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrNotDir):
		s.fail(x, fasthttp.StatusConflict, "parent directory does not exist")
		return
	case err != nil:
		s.failFS(x, "resolve parent", err)
		return
	case !pattr.IsDir():
		s.fail(x, fasthttp.StatusConflict, "parent is not a directory")
		return
	}
	attr, v, ok := s.currentValidators(x, p)
	if !ok {
		return
	}
	if v.exists && !attr.IsRegular() {
		s.fail(x, fasthttp.StatusConflict, "target exists and is not a regular file")
		return
	}
	if st := checkPreconditions(x.method, requestConds(x.ctx), v); st != 0 {
		s.fail(x, fasthttp.StatusPreconditionFailed, "precondition failed")
		return
	}

	tmp := joinPath(parent, tempName(name))
	f, err := s.fs.CreatePath(x.rctx, tmp, 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		s.failFS(x, "create", err)
		return
	}
	n, err := s.copyBody(x, f)
	if err == nil {
		err = f.Close(x.rctx)
		if err == nil {
			err = s.fs.RenamePath(x.rctx, tmp, p)
		}
	} else {
		s.closeFile(f)
	}
	if err != nil {
		s.removeTemp(tmp)
		var ab *abortError
		if errors.As(err, &ab) {
			s.log.Info("upload aborted", "path", p, "bytes", n, "err", err)
			s.fail(x, fasthttp.StatusBadRequest, "upload incomplete: "+ab.reason)
			x.ctx.SetConnectionClose()
			return
		}
		s.failFS(x, "write", err)
		return
	}
	s.metrics.bytesReceived.Add(float64(n))
	if a, err := s.fs.Resolve(x.rctx, p); err == nil {
		x.ctx.Response.Header.Set("ETag", etagOf(a))
		x.ctx.Response.Header.Set("Last-Modified", lastModified(a, time.Now()).Format(http.TimeFormat))
	}
	if v.exists {
		x.ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	x.ctx.Response.Header.Set("Location", escapePath(p))
	x.ctx.SetStatusCode(fasthttp.StatusCreated)
}

// abortError is an upload body that did not arrive whole.
type abortError struct {
	reason string
	err    error
}

func (e *abortError) Error() string { return "upload: " + e.reason + ": " + e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// copyBody streams the request body into f in UploadPiece writes and
// returns the bytes written. A body shorter than its Content-Length, a
// broken chunked body, a stalled client or a shutdown is an *abortError.
func (s *Server) copyBody(x *exchange, f File) (int64, error) {
	body := x.ctx.RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(x.ctx.Request.Body())
	}
	// On shutdown, unblock a read waiting on a silent client.
	stop := context.AfterFunc(x.rctx, func() { _ = x.ctx.Conn().SetReadDeadline(time.Now()) })
	defer stop()
	want := int64(x.ctx.Request.Header.ContentLength()) // -1: chunked
	buf := make([]byte, s.cfg.UploadPiece)
	var off int64
	for {
		_ = x.ctx.SetReadDeadline(time.Now().Add(s.cfg.StallTimeout))
		n, rerr := readPiece(body, buf)
		if n > 0 {
			if _, err := f.WriteAt(x.rctx, buf[:n], off); err != nil {
				return off, fmt.Errorf("httpd: write at %d: %w", off, err)
			}
			off += int64(n)
		}
		switch {
		case rerr == nil:
			continue
		case rerr == io.EOF && want >= 0 && off != want:
			return off, &abortError{reason: fmt.Sprintf("got %d of %d bytes", off, want), err: ErrAborted}
		case rerr == io.EOF:
			return off, nil
		case x.rctx.Err() != nil:
			return off, &abortError{reason: "server shutting down", err: ErrAborted}
		default:
			return off, &abortError{reason: "body read failed", err: fmt.Errorf("%w: %v", ErrAborted, rerr)}
		}
	}
}

// readPiece fills buf from r. It returns early only with r's error, io.EOF
// at the end of the body, unchanged (unlike io.ReadFull, which would turn
// a normal short last piece into io.ErrUnexpectedEOF and so hide a chunked
// body that really was cut).
func readPiece(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// removeTemp deletes an abandoned upload, even when the request's context
// has ended.
func (s *Server) removeTemp(tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.fs.RemovePath(ctx, tmp, false); err != nil && !errors.Is(err, wire.ErrNotFound) {
		s.log.Warn("remove abandoned upload", "path", tmp, "err", err)
	}
}

// tempName is a fresh hidden name for an upload of name, within the name
// length limit.
func tempName(name string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	t := uploadPrefix + hex.EncodeToString(b[:]) + "-" + name
	if len(t) > wire.MaxNameLen {
		t = t[:wire.MaxNameLen]
	}
	return t
}

// serveDelete removes the file (or empty directory) at the path: 204, 404
// when absent, 409 for a directory that is not empty.
func (s *Server) serveDelete(x *exchange) {
	if !s.checkWrite(x) {
		return
	}
	p, ok := s.writeTarget(x, true)
	if !ok {
		return
	}
	_, v, ok := s.currentValidators(x, p)
	if !ok {
		return
	}
	if !v.exists {
		s.fail(x, fasthttp.StatusNotFound, "not found")
		return
	}
	if st := checkPreconditions(x.method, requestConds(x.ctx), v); st != 0 {
		s.fail(x, fasthttp.StatusPreconditionFailed, "precondition failed")
		return
	}
	if err := s.fs.RemovePath(x.rctx, p, false); err != nil {
		s.failFS(x, "remove", err)
		return
	}
	x.ctx.SetStatusCode(fasthttp.StatusNoContent)
}
