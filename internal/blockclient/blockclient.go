// Package blockclient is the one client of the chunkserver HTTP API
// (internal/wire's /v1/block, /v1/blocks, /v1/binlog, /v1/status): the
// SDK's uploads and reads, the metaserver's collector and the chunkservers
// that follow each other's binlogs all call chunkservers through it.
//
// Every call takes a context; its deadline (or Config.Timeout when it has
// none) bounds the request. Failures to reach a server are UNAVAILABLE;
// a server's error reply keeps its wire code, so callers match them with
// errors.Is against the wire sentinels.
package blockclient

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// Config configures a Client.
type Config struct {
	// Name is the User-Agent of requests.
	Name string
	// Secret is the cluster secret sent on every request; empty sends none.
	Secret string
	// Timeout bounds a request whose context has no deadline.
	Timeout time.Duration
	// MaxConnsPerHost bounds the connections to one chunkserver; 0 means
	// fasthttp's default (512).
	MaxConnsPerHost int
	// MaxBody bounds a response body; 0 means a whole block plus headroom
	// for a listing.
	MaxBody int
	// BufferSize is the read and write buffer of a connection; 0 means
	// fasthttp's default.
	BufferSize int
}

// Client calls chunkservers. It is safe for concurrent use.
type Client struct {
	hc      *fasthttp.Client
	secret  string
	timeout time.Duration
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = wire.MaxBlockSize + 1<<20
	}
	if cfg.Name == "" {
		cfg.Name = "reelfs"
	}
	return &Client{
		secret:  cfg.Secret,
		timeout: cfg.Timeout,
		hc: &fasthttp.Client{
			Name:                          cfg.Name,
			MaxConnsPerHost:               cfg.MaxConnsPerHost,
			MaxIdleConnDuration:           90 * time.Second,
			MaxConnWaitTimeout:            cfg.Timeout,
			ReadBufferSize:                cfg.BufferSize,
			WriteBufferSize:               cfg.BufferSize,
			ReadTimeout:                   cfg.Timeout,
			WriteTimeout:                  cfg.Timeout,
			MaxResponseBodySize:           cfg.MaxBody,
			MaxIdemponentCallAttempts:     1, // retries belong to the caller
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
		},
	}
}

// CloseIdleConnections closes pooled connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// do runs one request under ctx's deadline. A transport failure is
// UNAVAILABLE.
func (c *Client) do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := ctx.Err(); err != nil {
		return wire.Errorf(wire.ErrUnavailable, "%v", err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(c.timeout)
	}
	wire.SetAuth(req, c.secret)
	if err := c.hc.DoDeadline(req, resp, dl); err != nil {
		return wire.Errorf(wire.ErrUnavailable, "%v", err)
	}
	return nil
}

// Put stores data as block id on addr; crc is its CRC32C as 8 hex digits
// (empty sends none). It reports whether the block was new (201) or an
// identical copy was already there (200).
func (c *Client) Put(ctx context.Context, addr string, id uint64, data []byte, crc string) (created bool, err error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.PathBlock + wire.BlockName(id))
	req.Header.SetMethod(fasthttp.MethodPut)
	req.Header.SetContentType("application/octet-stream")
	if crc != "" {
		req.Header.Set(wire.HeaderCRC, crc)
	}
	req.SetBodyRaw(data)
	if err := c.do(ctx, req, resp); err != nil {
		return false, fmt.Errorf("put %s on %s: %w", wire.BlockName(id), addr, err)
	}
	if resp.StatusCode()/100 != 2 {
		return false, wire.ErrorFromResponse(resp)
	}
	return resp.StatusCode() == fasthttp.StatusCreated, nil
}

// Get reads bytes [from, to) of block id on addr (the whole block when
// whole is set, which sends no Range) and hands the body to use, which
// owns it: the response's buffer is handed over rather than copied (a
// separate reader's copies per byte are most of its CPU), and the pooled
// response reads its next body into a fresh one.
func (c *Client) Get(ctx context.Context, addr string, id uint64, from, to int64, whole bool, use func(body []byte) error) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.PathBlock + wire.BlockName(id))
	req.Header.SetMethod(fasthttp.MethodGet)
	if !whole {
		req.Header.SetByteRange(int(from), int(to-1))
	}
	if err := c.do(ctx, req, resp); err != nil {
		return fmt.Errorf("get %s on %s: %w", wire.BlockName(id), addr, err)
	}
	switch st := resp.StatusCode(); {
	case st == fasthttp.StatusOK && whole, st == fasthttp.StatusPartialContent && !whole:
	case st/100 == 2:
		return wire.Errorf(wire.ErrIO, "get %s on %s: unexpected status %d", wire.BlockName(id), addr, st)
	default:
		return wire.ErrorFromResponse(resp)
	}
	body := resp.SwapBody(nil)
	if !whole && int64(len(body)) != to-from {
		return wire.Errorf(wire.ErrIO, "get %s on %s: %d bytes for a range of %d (block size mismatch?)",
			wire.BlockName(id), addr, len(body), to-from)
	}
	return use(body)
}

// GetBlock reads the whole block id from addr into a new slice; a body
// whose length is not size (when size > 0) is EIO.
func (c *Client) GetBlock(ctx context.Context, addr string, id uint64, size uint32) ([]byte, error) {
	var out []byte
	err := c.Get(ctx, addr, id, 0, 0, true, func(body []byte) error {
		if size > 0 && len(body) != int(size) {
			return wire.Errorf(wire.ErrIO, "get %s on %s: %d bytes, the log says %d",
				wire.BlockName(id), addr, len(body), size)
		}
		out = body
		return nil
	})
	return out, err
}

// Delete removes block id on addr. An absent block is wire.ErrNotFound.
func (c *Client) Delete(ctx context.Context, addr string, id uint64) error {
	return c.DeleteEpoch(ctx, addr, id, 0)
}

// DeleteEpoch is Delete sent under a metaserver epoch (0: none): the
// chunkserver refuses it when it has seen a newer one, so a deposed
// leader deletes nothing.
func (c *Client) DeleteEpoch(ctx context.Context, addr string, id, epoch uint64) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + addr + wire.PathBlock + wire.BlockName(id))
	req.Header.SetMethod(fasthttp.MethodDelete)
	if epoch != 0 {
		req.Header.Set(wire.HeaderEpoch, strconv.FormatUint(epoch, 10))
	}
	if err := c.do(ctx, req, resp); err != nil {
		return fmt.Errorf("delete %s on %s: %w", wire.BlockName(id), addr, err)
	}
	if resp.StatusCode()/100 != 2 {
		return wire.ErrorFromResponse(resp)
	}
	return nil
}

// List reads one page of addr's inventory: blocks with ids above after,
// at most limit, last written before the Unix-nanosecond time before (0:
// any time).
func (c *Client) List(ctx context.Context, addr string, after uint64, limit int, before int64) (wire.BlockList, error) {
	uri := "http://" + addr + wire.PathBlocks + "?after=" + strconv.FormatUint(after, 10) +
		"&limit=" + strconv.Itoa(limit)
	if before != 0 {
		uri += "&before=" + strconv.FormatInt(before, 10)
	}
	var page wire.BlockList
	err := c.getJSON(ctx, uri, &page)
	if err != nil {
		return wire.BlockList{}, fmt.Errorf("list blocks on %s: %w", addr, err)
	}
	return page, nil
}

// Binlog fetches up to limit entries of addr's binlog from seq from,
// waiting up to wait for one to appear. member, when set, names the
// fetching follower: the request acknowledges every entry below from.
func (c *Client) Binlog(ctx context.Context, addr string, from uint64, limit int, wait time.Duration, member string) (wire.BinlogReply, error) {
	uri := "http://" + addr + wire.PathBinlog + "?from=" + strconv.FormatUint(from, 10) +
		"&limit=" + strconv.Itoa(limit)
	if wait > 0 {
		uri += "&wait=" + wait.String()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+c.timeout)
		defer cancel()
	}
	if member != "" {
		uri += "&member=" + member
	}
	var reply wire.BinlogReply
	if err := c.getJSON(ctx, uri, &reply); err != nil {
		return wire.BinlogReply{}, fmt.Errorf("binlog of %s: %w", addr, err)
	}
	return reply, nil
}

// Status reads addr's own report (what it heartbeats to the tracker).
func (c *Client) Status(ctx context.Context, addr string) (wire.Member, error) {
	var m wire.Member
	if err := c.getJSON(ctx, "http://"+addr+wire.PathStatus, &m); err != nil {
		return wire.Member{}, fmt.Errorf("status of %s: %w", addr, err)
	}
	return m, nil
}

func (c *Client) getJSON(ctx context.Context, uri string, out any) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(uri)
	req.Header.SetMethod(fasthttp.MethodGet)
	if err := c.do(ctx, req, resp); err != nil {
		return err
	}
	if resp.StatusCode()/100 != 2 {
		return wire.ErrorFromResponse(resp)
	}
	if err := json.Unmarshal(resp.Body(), out); err != nil {
		return wire.Errorf(wire.ErrIO, "malformed reply: %v", err)
	}
	return nil
}
