package live

import "errors"

// Sentinel errors; the HTTP layer maps each to its status code.
var (
	// ErrConfig is a Config that Validate refuses.
	ErrConfig = errors.New("live: invalid config")
	// ErrBadOffer is an SDP offer that does not parse or has no media.
	ErrBadOffer = errors.New("live: malformed SDP offer")
	// ErrNoCodec is an offer none of whose codecs the server carries (or,
	// for a viewer, none the stream was published with).
	ErrNoCodec = errors.New("live: no usable codec in offer")
	// ErrStreamBusy is a second publisher on a live stream name.
	ErrStreamBusy = errors.New("live: stream already has a publisher")
	// ErrNoStream is a viewer of a stream nobody publishes.
	ErrNoStream = errors.New("live: no such stream")
	// ErrFull is a session beyond Config.MaxSessions.
	ErrFull = errors.New("live: too many sessions")
	// ErrBadMedia is a stored file that cannot be played (not MP4).
	ErrBadMedia = errors.New("live: cannot play file")
	// ErrClosed is a request to a server that is shutting down.
	ErrClosed = errors.New("live: server closed")
)
