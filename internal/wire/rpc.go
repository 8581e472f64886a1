package wire

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// HeaderAuth carries the cluster secret on internal calls when one is set:
// "Authorization: Bearer SECRET".
const HeaderAuth = "Authorization"

// MaxRPCBody bounds the JSON body of any metadata request or reply.
const MaxRPCBody = 16 << 20

// BlockName is the path form of a block id: 16 lower-case hex digits.
func BlockName(id uint64) string {
	const hex = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hex[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// ParseBlockName parses a BlockName. Anything else, and id 0, is EINVAL.
func ParseBlockName(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, Errorf(ErrInvalid, "block id %q: want 16 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, Errorf(ErrInvalid, "block id %q: want 16 lower-case hex digits", s)
		}
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil || id == 0 {
		return 0, Errorf(ErrInvalid, "block id %q: out of range", s)
	}
	return id, nil
}

// SetAuth adds the cluster secret to an outgoing request; no-op when empty.
func SetAuth(req *fasthttp.Request, secret string) {
	if secret != "" {
		req.Header.Set(HeaderAuth, "Bearer "+secret)
	}
}

// Authorized reports whether an incoming request carries the cluster
// secret. With no secret configured every request is authorized.
func Authorized(ctx *fasthttp.RequestCtx, secret string) bool {
	if secret == "" {
		return true
	}
	got := ctx.Request.Header.Peek(HeaderAuth)
	want := "Bearer " + secret
	return subtle.ConstantTimeCompare(got, []byte(want)) == 1
}

// ReplyError writes err as a JSON {code, msg} body with the code's status.
func ReplyError(ctx *fasthttp.RequestCtx, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeIO, Msg: err.Error()}
	}
	body, _ := json.Marshal(e)
	ctx.Response.Header.Set(HeaderError, string(e.Code))
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(HTTPStatus(e.Code))
	ctx.SetBody(body)
}

// ReplyJSON writes v as a 200 JSON body.
func ReplyJSON(ctx *fasthttp.RequestCtx, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		ReplyError(ctx, fmt.Errorf("encode reply: %w", err))
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(body)
}

// DecodeBody decodes a JSON request body into v; a malformed body is EINVAL.
func DecodeBody(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(body) > MaxRPCBody {
		return Errorf(ErrInvalid, "request body of %d bytes is too large", len(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Errorf(ErrInvalid, "malformed request body: %v", err)
	}
	return nil
}

// ErrorFromResponse turns a non-2xx response into a wire error: the JSON
// {code,msg} body when there is one, else the HeaderError code, else a code
// chosen by status.
func ErrorFromResponse(resp *fasthttp.Response) error {
	status := resp.StatusCode()
	e := &Error{}
	if json.Unmarshal(resp.Body(), e) == nil && e.Code != "" {
		return e
	}
	if c := resp.Header.Peek(HeaderError); len(c) > 0 {
		return &Error{Code: Code(c), Msg: fmt.Sprintf("status %d", status)}
	}
	switch {
	case status == 404:
		return &Error{Code: CodeNotFound, Msg: "status 404"}
	case status == 401:
		return &Error{Code: CodeUnauthorized, Msg: "status 401"}
	case status == 507:
		return &Error{Code: CodeNoSpace, Msg: "status 507"}
	case status == 502 || status == 503 || status == 504:
		return &Error{Code: CodeUnavailable, Msg: fmt.Sprintf("status %d", status)}
	}
	return &Error{Code: CodeIO, Msg: fmt.Sprintf("status %d", status)}
}

// Call POSTs req as JSON to http://addr+path and decodes a 2xx reply into
// resp (which may be nil). Network failures come back as ErrUnavailable so
// callers can retry them; other failures carry the server's code. Call does
// not retry.
func Call(ctx context.Context, hc *fasthttp.Client, addr, path, secret string, req, resp any) error {
	return CallID(ctx, hc, addr, path, secret, "", req, resp)
}

// HeaderRequestID carries a request id: a metaserver applies a change
// made under one id at most once, and answers a retry with the first
// reply.
const HeaderRequestID = "X-Reelfs-Request"

// CallID is Call with a request id ("" sends none).
func CallID(ctx context.Context, hc *fasthttp.Client, addr, path, secret, reqID string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	hreq := fasthttp.AcquireRequest()
	hresp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(hreq)
	defer fasthttp.ReleaseResponse(hresp)
	hreq.SetRequestURI("http://" + addr + path)
	hreq.Header.SetMethod(fasthttp.MethodPost)
	hreq.Header.SetContentType("application/json")
	SetAuth(hreq, secret)
	if reqID != "" {
		hreq.Header.Set(HeaderRequestID, reqID)
	}
	hreq.SetBodyRaw(body)

	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return ctx.Err()
		}
	}
	if err := hc.DoTimeout(hreq, hresp, timeout); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return Errorf(ErrUnavailable, "%s%s: %v", addr, path, err)
	}
	if hresp.StatusCode()/100 != 2 {
		return ErrorFromResponse(hresp)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(hresp.Body(), resp); err != nil {
		return Errorf(ErrIO, "%s%s: malformed reply: %v", addr, path, err)
	}
	return nil
}
