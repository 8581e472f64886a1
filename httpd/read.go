package httpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// serveRead answers GET and HEAD: server endpoints under /-/, the player
// page under /player/, and files and listings everywhere else.
func (s *Server) serveRead(x *exchange) {
	clean, dir, err := cleanPath(x.path)
	if err != nil {
		s.failErr(x, fasthttp.StatusBadRequest, err)
		return
	}
	switch {
	case under(clean, reservedPrefix):
		s.serveInternal(x, clean)
	case under(clean, playerPrefix):
		target := strings.TrimPrefix(clean, playerPrefix)
		if target == "" {
			target = "/"
		}
		s.servePlayer(x, target)
	default:
		s.serveNode(x, clean, dir)
	}
}

// serveInternal answers the server's own endpoints.
func (s *Server) serveInternal(x *exchange, p string) {
	switch p {
	case "/-/health":
		ctx, cancel := context.WithTimeout(x.rctx, 5*time.Second)
		defer cancel()
		x.ctx.Response.Header.Set("Cache-Control", "no-store")
		if _, err := s.fs.Resolve(ctx, "/"); err != nil {
			s.fail(x, fasthttp.StatusServiceUnavailable, "unhealthy: "+string(wire.CodeOf(err)))
			return
		}
		x.ctx.SetContentType("text/plain; charset=utf-8")
		x.ctx.SetBodyString("ok\n")
	case "/-/metrics":
		s.promh(x.ctx)
	default:
		s.fail(x, fasthttp.StatusNotFound, "no such server endpoint")
	}
}

// checkRead enforces signed URLs for a read of clean path p.
func (s *Server) checkRead(x *exchange, p string) bool {
	if !s.cfg.signing() {
		return true
	}
	args := x.ctx.QueryArgs()
	err := verifySignature(s.cfg.Secret, p, string(args.Peek("e")), string(args.Peek("s")), time.Now())
	if err != nil {
		s.failErr(x, fasthttp.StatusForbidden, err)
		return false
	}
	return true
}

// linkQuery is the query string (with "?") that links from this page to
// clean path p carry: with signed reads, a signature for p with the expiry
// of the request's own (already verified) signature, so following links
// never extends a URL's life. Empty without signed reads.
func (s *Server) linkQuery(x *exchange, p string) string {
	if !s.cfg.signing() {
		return ""
	}
	e := string(x.ctx.QueryArgs().Peek("e"))
	return "?e=" + e + "&s=" + signature(s.cfg.Secret, p, e)
}

// serveNode answers a path of the namespace: a file, or a directory.
func (s *Server) serveNode(x *exchange, p string, dir bool) {
	if !s.checkRead(x, p) {
		return
	}
	// A GET opens the file in the same metaserver round trip as the path
	// walk: the attributes it answers with are those of the open, so the
	// response describes exactly what is streamed.
	var (
		attr wire.Attr
		f    File
		err  error
	)
	if x.method == fasthttp.MethodGet {
		attr, f, err = s.fs.ResolveOpen(x.rctx, p)
	} else {
		attr, err = s.fs.Resolve(x.rctx, p)
	}
	if err != nil {
		s.failFS(x, "resolve", err)
		return
	}
	if f != nil && dir { // "file/": answered 404 below, nothing streamed
		s.closeFile(f)
		f = nil
	}
	switch {
	case attr.IsDir() && !dir:
		loc := escapePath(p) + "/"
		if q := x.ctx.URI().QueryString(); len(q) > 0 {
			loc += "?" + string(q)
		}
		x.ctx.Response.Header.Set("Location", loc)
		s.fail(x, fasthttp.StatusMovedPermanently, "moved to "+loc)
	case attr.IsDir():
		s.serveListing(x, p, attr)
	case dir:
		s.fail(x, fasthttp.StatusNotFound, "not a directory")
	case !attr.IsRegular():
		s.fail(x, fasthttp.StatusNotFound, "not a regular file (symlinks are not followed)")
	default:
		s.serveFile(x, p, attr, f)
	}
}

// requestConds reads the conditional header fields.
func requestConds(ctx *fasthttp.RequestCtx) condHeaders {
	h := &ctx.Request.Header
	return condHeaders{
		ifMatch:           string(h.Peek("If-Match")),
		ifNoneMatch:       string(h.Peek("If-None-Match")),
		ifModifiedSince:   string(h.Peek("If-Modified-Since")),
		ifUnmodifiedSince: string(h.Peek("If-Unmodified-Since")),
		ifRange:           string(h.Peek("If-Range")),
	}
}

// serveFile answers GET or HEAD of a regular file: preconditions, ranges,
// and a streamed body. A GET comes with the file open (f), which serveFile
// owns from here on; a HEAD with a nil f.
func (s *Server) serveFile(x *exchange, p string, attr wire.Attr, f File) {
	now := time.Now()
	conds := requestConds(x.ctx)
	v := validators{exists: true, etag: etagOf(attr), modTime: lastModified(attr, now)}
	if s.answerPreconditions(x, conds, v) {
		if f != nil {
			s.closeFile(f)
		}
		return
	}
	if x.method == fasthttp.MethodGet && f == nil {
		s.fail(x, fasthttp.StatusInternalServerError, "file not open")
		return
	}

	size := int64(attr.Size)
	_, name := splitPath(p)
	ctype := contentType(name)
	h := &x.ctx.Response.Header
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", v.etag)
	h.Set("Last-Modified", v.modTime.Format(http.TimeFormat))
	if x.ctx.QueryArgs().Has("download") {
		h.Set("Content-Disposition", contentDisposition(name))
	}

	decision, ranges := rangeIgnore, []byteRange(nil)
	// RFC 9110 §14.2: Range is defined for GET only; HEAD ignores it.
	if rh := x.rng; rh != "" && x.method == fasthttp.MethodGet {
		if ifRangeHolds(conds, v) {
			ranges, decision = parseRange(rh, size, s.cfg.MaxRanges)
		}
		kind := "ignored"
		switch {
		case decision == rangeUnsatisfiable:
			kind = "unsatisfiable"
		case decision == rangeServe && len(ranges) == 1:
			kind = "single"
		case decision == rangeServe:
			kind = "multi"
		}
		s.metrics.rangeRequests.WithLabelValues(kind).Inc()
	}

	var segs []segment
	var total int64
	switch {
	case decision == rangeUnsatisfiable:
		s.closeFile(f)
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		s.fail(x, fasthttp.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
		return
	case decision == rangeServe && len(ranges) == 1:
		r := ranges[0]
		x.ctx.SetStatusCode(fasthttp.StatusPartialContent)
		h.Set("Content-Range", r.contentRange(size))
		h.Set("Content-Type", ctype)
		segs, total = []segment{{off: r.start, n: r.length}}, r.length
		s.metrics.observeRanges(ranges, size)
	case decision == rangeServe:
		boundary := newBoundary()
		x.ctx.SetStatusCode(fasthttp.StatusPartialContent)
		h.Set("Content-Type", "multipart/byteranges; boundary="+boundary)
		segs, total = multipartLayout(ranges, size, ctype, boundary)
		s.metrics.observeRanges(ranges, size)
	default:
		x.ctx.SetStatusCode(fasthttp.StatusOK)
		h.Set("Content-Type", ctype)
		segs, total = []segment{{off: 0, n: size}}, size
	}

	if f == nil || total == 0 { // HEAD, or an empty body
		s.closeFile(f)
		setBodyless(x.ctx, total)
		return
	}
	bs := s.newBodyStream(f, segs, total)
	if err := bs.first(x.rctx); err != nil {
		_ = bs.Close()
		h.Del("Content-Type")
		s.failFS(x, "read", err)
		return
	}
	status := x.ctx.Response.StatusCode()
	conn := x.ctx.Conn()
	bs.conn, bs.stall = conn, s.cfg.StallTimeout
	// On shutdown, cut the connection so a stalled client cannot hold the
	// stream (and Run) forever.
	stopWatch := context.AfterFunc(s.base, func() { _ = conn.SetDeadline(time.Now()) })
	bs.onEnd = func(sent int64, err error) {
		stopWatch()
		x.finish(status, sent, err)
	}
	x.streamed = true
	x.ctx.SetBodyStream(bs, int(total))
}

// answerPreconditions answers 304 or 412 when a precondition says so.
func (s *Server) answerPreconditions(x *exchange, conds condHeaders, v validators) bool {
	switch checkPreconditions(x.method, conds, v) {
	case fasthttp.StatusNotModified:
		x.ctx.Response.Header.Set("ETag", v.etag)
		x.ctx.Response.Header.Set("Last-Modified", v.modTime.Format(http.TimeFormat))
		x.ctx.SetStatusCode(fasthttp.StatusNotModified)
		return true
	case fasthttp.StatusPreconditionFailed:
		s.fail(x, fasthttp.StatusPreconditionFailed, "precondition failed")
		return true
	}
	return false
}

// setBodyless answers with Content-Length n and no body (HEAD, or n = 0).
// An empty stream of declared size n makes fasthttp send the header as is;
// for HEAD it never reads the stream, and n = 0 reads nothing.
func setBodyless(ctx *fasthttp.RequestCtx, n int64) {
	ctx.SetBodyStream(strings.NewReader(""), int(n))
}

// closeFile releases a file opened for reading.
func (s *Server) closeFile(f File) {
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		s.log.Debug("close file", "err", err)
	}
}

// contentDisposition makes an attachment header for name: an ASCII
// fallback filename (each quote, backslash, percent, control and non-ASCII
// character as "_")
// and the exact name as RFC 8187 UTF-8 percent-encoding.
func contentDisposition(name string) string {
	var fb strings.Builder
	for _, c := range name {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '%' {
			c = '_'
		}
		fb.WriteRune(c)
	}
	var enc strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			enc.WriteByte(c)
			continue
		}
		enc.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return `attachment; filename="` + fb.String() + `"; filename*=UTF-8''` + enc.String()
}

// newBoundary is a random multipart boundary.
func newBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// carriedQuery is the e/s signature of the request, to carry from a player
// page to its media URL ("" when the request has none).
func carriedQuery(ctx *fasthttp.RequestCtx) string {
	args := ctx.QueryArgs()
	e, sig := args.Peek("e"), args.Peek("s")
	if len(e) == 0 || len(sig) == 0 {
		return ""
	}
	return "?e=" + url.QueryEscape(string(e)) + "&s=" + url.QueryEscape(string(sig))
}
