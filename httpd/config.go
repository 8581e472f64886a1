package httpd

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/reelfs/reelfs/consul"
)

// Config configures a public streaming server. Fill it from DefaultConfig.
type Config struct {
	// Listen is the host:port to serve on; port 0 picks a free one.
	Listen string

	// Secret is the cluster secret. When set, PUT and DELETE need
	// "Authorization: Bearer SECRET", and (with SignedReads) reads need a
	// signed URL made with Sign or SignURL.
	Secret string

	// SignedReads makes every GET/HEAD of a file, listing or player page
	// require ?e=EXPIRY&s=HMAC when Secret is set. It has no effect without
	// a Secret: reads are then public. DefaultConfig sets it, so a server
	// with a secret is protected unless the operator opts out.
	SignedReads bool

	// AllowAnonymousWrites lets PUT and DELETE through without a Secret
	// (the all-in-one development server). Without it, and without a
	// Secret, writes are refused with 403.
	AllowAnonymousWrites bool

	// MaxRanges is the most byte ranges one request may ask for. A Range
	// header with more is ignored and the whole file is sent (RFC 9110
	// §14.2 lets a server ignore a Range header that looks like abuse).
	MaxRanges int

	// ReadAhead bounds the bytes fetched from the file ahead of what the
	// client has taken, per response: the memory one slow client can pin.
	ReadAhead int64

	// PieceSize is the size of one file read of the streaming pipeline.
	// It is capped at ReadAhead.
	PieceSize int

	// UploadPiece is the size of one write of a streamed PUT body.
	UploadPiece int

	// ListPage is the most entries one listing page shows; a longer
	// directory gets a "next page" link (?after=NAME).
	ListPage int

	// HeaderTimeout bounds reading a request's header (and a first slice
	// of its body).
	HeaderTimeout time.Duration

	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration

	// StallTimeout cuts a connection whose peer accepts no response byte
	// (or sends no upload byte) for this long, like nginx's send_timeout.
	// A paused player is cut too and resumes with a Range request.
	StallTimeout time.Duration

	// ShutdownTimeout is how long Run lets responses in flight finish after
	// its context ends before it aborts them.
	ShutdownTimeout time.Duration

	// Concurrency is the most connections served at once; more are
	// answered 503 when accepted and closed. Each response may pin
	// ReadAhead bytes, so streaming memory stays below about
	// Concurrency x ReadAhead.
	Concurrency int

	// MaxConnsPerIP caps the connections from one address (a browser
	// opens about six, a player one or two); 0 means no cap, for a server
	// behind a proxy that all requests come through.
	MaxConnsPerIP int

	// MaxRequestBody is how much of a request body is read before its
	// handler runs; a longer body (an upload) streams in UploadPiece
	// writes.
	MaxRequestBody int

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// Consul, when set, is the agent Run registers the server with
	// (service reelfs-httpd, checked at /-/health) and deregisters from
	// when Run ends. Nil: no Consul.
	Consul *consul.Client

	// AccessLog logs one Info line per request (method, path, range,
	// status, bytes, duration).
	AccessLog bool
}

// DefaultConfig returns a configuration serving 127.0.0.1:9480 with public
// reads (until a Secret is set) and refused anonymous writes.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:9480",
		SignedReads:     true,
		MaxRanges:       16,
		ReadAhead:       8 << 20,
		PieceSize:       1 << 20,
		UploadPiece:     4 << 20,
		ListPage:        1000,
		HeaderTimeout:   30 * time.Second,
		IdleTimeout:     2 * time.Minute,
		StallTimeout:    60 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Concurrency:     1024,
		MaxConnsPerIP:   256,
		MaxRequestBody:  64 << 10,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate checks every field and the relations between them.
func (c Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("%w: Listen is empty", ErrConfig)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: Listen %q: %v", ErrConfig, c.Listen, err)
	}
	if c.MaxRanges < 1 || c.MaxRanges > 1000 {
		return fmt.Errorf("%w: MaxRanges %d not in [1, 1000]", ErrConfig, c.MaxRanges)
	}
	if c.PieceSize < 1 || c.PieceSize > 64<<20 {
		return fmt.Errorf("%w: PieceSize %d not in [1, 64 MiB]", ErrConfig, c.PieceSize)
	}
	if c.ReadAhead < 1 {
		return fmt.Errorf("%w: ReadAhead %d must be positive", ErrConfig, c.ReadAhead)
	}
	if c.UploadPiece < 1 || c.UploadPiece > 64<<20 {
		return fmt.Errorf("%w: UploadPiece %d not in [1, 64 MiB]", ErrConfig, c.UploadPiece)
	}
	if c.ListPage < 1 || c.ListPage > 100000 {
		return fmt.Errorf("%w: ListPage %d not in [1, 100000]", ErrConfig, c.ListPage)
	}
	if c.Concurrency < 1 || c.Concurrency > 1<<20 {
		return fmt.Errorf("%w: Concurrency %d not in [1, %d]", ErrConfig, c.Concurrency, 1<<20)
	}
	if c.MaxConnsPerIP < 0 || c.MaxConnsPerIP > c.Concurrency {
		return fmt.Errorf("%w: MaxConnsPerIP %d not in [0, Concurrency %d]", ErrConfig, c.MaxConnsPerIP, c.Concurrency)
	}
	if c.MaxRequestBody < 4<<10 || c.MaxRequestBody > 16<<20 {
		return fmt.Errorf("%w: MaxRequestBody %d not in [4 KiB, 16 MiB]", ErrConfig, c.MaxRequestBody)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeaderTimeout", c.HeaderTimeout},
		{"IdleTimeout", c.IdleTimeout},
		{"StallTimeout", c.StallTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%w: %s %v must be positive", ErrConfig, d.name, d.v)
		}
	}
	return nil
}

// signing reports whether reads need a signed URL.
func (c Config) signing() bool { return c.Secret != "" && c.SignedReads }

// pieceSize is the read piece, never larger than the read-ahead window.
func (c Config) pieceSize() int {
	if int64(c.PieceSize) > c.ReadAhead {
		return int(c.ReadAhead)
	}
	return c.PieceSize
}
