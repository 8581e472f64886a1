package metaserver

import (
	"errors"
	"fmt"

	"github.com/reelfs/reelfs/internal/wire"
)

// Sentinel errors of the package. Errors that answer a request carry a wire
// code instead (wire.ErrNotFound, wire.ErrInvalid, ...), so clients can
// match them with errors.Is after they crossed the wire.
var (
	// ErrClosed is returned by calls on a server or store that was closed.
	ErrClosed = errors.New("metaserver: closed")
	// ErrCorrupt reports a stored record that does not decode. It answers
	// a request as EIO.
	ErrCorrupt = errors.New("metaserver: corrupt record")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("metaserver: invalid config")
)

// ioError turns an internal failure (disk, corrupt record) into the EIO
// that answers a request, keeping the cause in the message. A nil err
// stays nil; an error that already has a wire code keeps it.
func ioError(op string, err error) error {
	if err == nil {
		return nil
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return err
	}
	return &wire.Error{Code: wire.CodeIO, Msg: fmt.Sprintf("metaserver: %s: %v", op, err)}
}

func errNoEnt(format string, args ...any) error {
	return wire.Errorf(wire.ErrNotFound, format, args...)
}

func errInval(format string, args ...any) error {
	return wire.Errorf(wire.ErrInvalid, format, args...)
}

func errCorruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
