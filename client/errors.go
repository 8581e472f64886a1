package client

import (
	"errors"

	"github.com/reelfs/reelfs/internal/wire"
)

// Sentinel errors of the client.
//
// Errors that came from a server carry a wire code. They match the io/fs
// sentinels where one has the same meaning (errors.Is(err, fs.ErrNotExist)
// for a missing path, fs.ErrExist, fs.ErrPermission, fs.ErrInvalid) and
// the exported sentinels below for reelfs's own conditions, so a program
// outside this module can tell "not found" from "cluster down".
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
	// fs.ErrPermission) holds as well.
	ErrReadOnly = &wire.Error{Code: wire.CodePerm, Msg: "client: file not open for writing"}

	// ErrUnavailable: the cluster (metaserver or every copy of a block)
	// could not be reached; retrying later may succeed.
	ErrUnavailable error = wire.ErrUnavailable

	// ErrNoSpace: no group can take new blocks (too full, or too few
	// in-sync members).
	ErrNoSpace error = wire.ErrNoSpace

	// ErrChecksum: stored bytes failed their CRC on every copy tried.
	ErrChecksum error = wire.ErrChecksum

	// ErrNotDir: a path component, or the target of a directory call,
	// is not a directory.
	ErrNotDir error = wire.ErrNotDir

	// ErrIsDir: a file call named a directory.
	ErrIsDir error = wire.ErrIsDir

	// ErrNotEmpty: a directory to remove or replace is not empty.
	ErrNotEmpty error = wire.ErrNotEmpty

	// ErrUnauthorized: the cluster secret is missing or wrong.
	ErrUnauthorized error = wire.ErrUnauthorized
)
