package live

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/reelfs/reelfs/consul"
)

// Config configures a live server. Start from DefaultConfig.
type Config struct {
	// Listen is the host:port of the HTTP signalling server (WHIP, WHEP,
	// pages, metrics); port 0 picks a free one.
	Listen string

	// MediaListen is the one UDP host:port that carries every session's
	// media (ICE, DTLS, SRTP), demultiplexed by ICE username. When its host
	// is a specific address, only candidates of that address are offered.
	MediaListen string

	// PublicIPs, when set, are announced as the host candidates instead of
	// the address MediaListen binds (a server behind 1:1 NAT).
	PublicIPs []string

	// Secret, when set, is the bearer token WHIP and WHEP requests must
	// carry ("Authorization: Bearer SECRET").
	Secret string

	// RecordDir is the directory of the filesystem that recordings go to:
	// RecordDir/{stream}/{start}.mp4 and .m3u8. Empty: no recording.
	RecordDir string

	// HTTPBase is the base URL of the httpd that serves the filesystem;
	// the pages link recordings under it. Empty: no links.
	HTTPBase string

	// FragmentTarget is the duration a recorded fragment aims at; a
	// fragment is cut at the first video keyframe past it, and at
	// FragmentMax without one.
	FragmentTarget time.Duration
	FragmentMax    time.Duration

	// RecordKeyframeEvery asks the publisher for a keyframe when the
	// recording saw none for this long, so every few fragments start one
	// (HLS seeking lands there). 0 disables it.
	RecordKeyframeEvery time.Duration

	// KeyframeInterval is the least time between two keyframe requests
	// (PLI) to one publisher; requests in between are coalesced.
	KeyframeInterval time.Duration

	// ViewerQueue is the most packets waiting to be sent to one viewer;
	// a viewer that falls this far behind is dropped.
	ViewerQueue int

	// PacketCache is the packets kept per published track for
	// retransmission on NACK (rounded up to a power of two).
	PacketCache int

	// MaxSessions bounds publishers plus viewers on the server.
	MaxSessions int

	// SessionRate and SessionBurst bound session creations (WHIP and WHEP
	// POSTs) per client IP: a token bucket of SessionBurst tokens refilled
	// at SessionRate per second. More answer 429.
	SessionRate  float64
	SessionBurst int

	// MaxOfferBytes bounds the body of a POST.
	MaxOfferBytes int64

	// ConnectTimeout ends a session whose peer has not connected this
	// long after the answer.
	ConnectTimeout time.Duration

	// DisconnectTimeout ends a session that lost its peer this long.
	DisconnectTimeout time.Duration

	// AllowOrigin is the Access-Control-Allow-Origin sent to browsers.
	AllowOrigin string

	// Logger receives structured logs (one logger per session with its
	// id); it must not be nil.
	Logger *slog.Logger

	// Consul, when set, is the agent Run registers the server with
	// (service reelfs-live, checked at /-/healthy) and deregisters from
	// when Run ends. Nil: no Consul.
	Consul *consul.Client
}

// DefaultConfig returns a server on 127.0.0.1:9490 (HTTP) and
// 127.0.0.1:9490 (UDP media), recording to /live.
func DefaultConfig() Config {
	return Config{
		Listen:              "127.0.0.1:9490",
		MediaListen:         "127.0.0.1:9490",
		RecordDir:           "/live",
		FragmentTarget:      time.Second,
		FragmentMax:         2 * time.Second,
		RecordKeyframeEvery: 4 * time.Second,
		KeyframeInterval:    500 * time.Millisecond,
		ViewerQueue:         1024,
		PacketCache:         1024,
		MaxSessions:         2000,
		SessionRate:         2,
		SessionBurst:        40,
		MaxOfferBytes:       64 << 10,
		ConnectTimeout:      15 * time.Second,
		DisconnectTimeout:   5 * time.Second,
		AllowOrigin:         "*",
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// Validate checks every field and their relations.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: Listen %q: %v", ErrConfig, c.Listen, err)
	}
	if _, err := net.ResolveUDPAddr("udp", c.MediaListen); err != nil {
		return fmt.Errorf("%w: MediaListen %q: %v", ErrConfig, c.MediaListen, err)
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%w: PublicIPs: %q is not an IP address", ErrConfig, ip)
		}
	}
	switch {
	case c.RecordDir != "" && !strings.HasPrefix(c.RecordDir, "/"):
		return fmt.Errorf("%w: RecordDir %q is not absolute", ErrConfig, c.RecordDir)
	case c.FragmentTarget < 100*time.Millisecond:
		return fmt.Errorf("%w: FragmentTarget %v below 100ms", ErrConfig, c.FragmentTarget)
	case c.FragmentMax < c.FragmentTarget:
		return fmt.Errorf("%w: FragmentMax %v below FragmentTarget %v", ErrConfig, c.FragmentMax, c.FragmentTarget)
	case c.RecordKeyframeEvery < 0:
		return fmt.Errorf("%w: RecordKeyframeEvery is negative", ErrConfig)
	case c.KeyframeInterval <= 0:
		return fmt.Errorf("%w: KeyframeInterval must be positive", ErrConfig)
	case c.ViewerQueue < 16:
		return fmt.Errorf("%w: ViewerQueue %d below 16", ErrConfig, c.ViewerQueue)
	case c.PacketCache < 64 || c.PacketCache > 1<<15:
		return fmt.Errorf("%w: PacketCache %d outside [64, 32768]", ErrConfig, c.PacketCache)
	case c.MaxSessions < 1:
		return fmt.Errorf("%w: MaxSessions must be positive", ErrConfig)
	case c.SessionRate <= 0 || c.SessionBurst < 1:
		return fmt.Errorf("%w: SessionRate and SessionBurst must be positive", ErrConfig)
	case c.MaxOfferBytes < 1024:
		return fmt.Errorf("%w: MaxOfferBytes %d below 1024", ErrConfig, c.MaxOfferBytes)
	case c.ConnectTimeout <= 0 || c.DisconnectTimeout <= 0:
		return fmt.Errorf("%w: ConnectTimeout and DisconnectTimeout must be positive", ErrConfig)
	case c.Logger == nil:
		return fmt.Errorf("%w: Logger is nil", ErrConfig)
	}
	return nil
}
