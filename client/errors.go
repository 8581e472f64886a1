package client

import (
	"errors"

	"github.com/reelfs/reelfs/internal/wire"
)

// Sentinel errors of the client. Errors that came from a server carry a
// wire code instead and match the wire sentinels (wire.ErrNotFound, ...).
var (
	// ErrConfig wraps every Config.Validate failure.
	ErrConfig = errors.New("client: invalid config")

	// ErrClosed is returned by a Client or File used after Close.
	ErrClosed = errors.New("client: closed")

	// ErrOpenFiles is returned by Client.Close when Files were still open;
	// the client shuts down anyway and their unflushed writes are lost.
	ErrOpenFiles = errors.New("client: files still open at close")

	// ErrReadOnly is returned by writes through a File opened read-only.
	// It carries the EBADF-like wire code EPERM so that errors.Is(err,
	// wire.ErrPerm) holds as well.
	ErrReadOnly = &wire.Error{Code: wire.CodePerm, Msg: "client: file not open for writing"}
)
