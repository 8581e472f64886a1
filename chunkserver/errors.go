package chunkserver

import "errors"

// Sentinel errors of the chunkserver. Errors that cross the wire also carry
// a wire code (wire.ErrChecksum, wire.ErrNotFound, ...); these sentinels say
// what went wrong locally and are matched with errors.Is.
var (
	// ErrClosed is returned by a store, binlog or server used after Close.
	ErrClosed = errors.New("chunkserver: closed")

	// ErrTrailer means a block file's trailer does not decode: the file is
	// truncated, foreign or damaged. It always comes with wire.ErrChecksum,
	// so a client sees a CHECKSUM error naming the block.
	ErrTrailer = errors.New("chunkserver: bad block trailer")

	// ErrUnsatisfiable means a Range header names no byte of the block; the
	// HTTP layer answers 416.
	ErrUnsatisfiable = errors.New("chunkserver: range not satisfiable")

	// ErrBinlogFailed means a binlog write or fsync failed. After an fsync
	// failure the kernel may have dropped the dirty pages, so the binlog
	// refuses every later append until a restart re-reads it from disk.
	ErrBinlogFailed = errors.New("chunkserver: binlog failed")

	// ErrConfig wraps every Config.Validate failure.
	ErrConfig = errors.New("chunkserver: invalid config")

	// ErrRunning is returned by Run when the server already ran or was
	// closed: a Server serves once.
	ErrRunning = errors.New("chunkserver: server already started or closed")
)

// taggedError is a wire error that also matches a local sentinel, so the
// message a client sees is the wire error's alone.
type taggedError struct {
	err error // usually a *wire.Error
	tag error // a sentinel above
}

func (e *taggedError) Error() string   { return e.err.Error() }
func (e *taggedError) Unwrap() []error { return []error{e.err, e.tag} }
