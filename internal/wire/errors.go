package wire

import (
	"errors"
	"fmt"
	"io/fs"
)

// Code is an error code that crosses the wire. Clients map it back to the
// sentinel errors below with errors.Is; nothing ever matches on message text.
type Code string

// The error codes of the cluster protocol.
const (
	CodeNotFound     Code = "ENOENT"
	CodeExist        Code = "EEXIST"
	CodeNotDir       Code = "ENOTDIR"
	CodeIsDir        Code = "EISDIR"
	CodeNotEmpty     Code = "ENOTEMPTY"
	CodeInvalid      Code = "EINVAL"
	CodeNameTooLong  Code = "ENAMETOOLONG"
	CodePerm         Code = "EPERM"
	CodeAccess       Code = "EACCES"
	CodeNoAttr       Code = "ENODATA"
	CodeRange        Code = "ERANGE"
	CodeNoSpace      Code = "NOSPACE"
	CodeChecksum     Code = "CHECKSUM"
	CodeNotLeader    Code = "NOTLEADER"
	CodeStaleEpoch   Code = "STALEEPOCH"
	CodeUnauthorized Code = "UNAUTHORIZED"
	CodeUnavailable  Code = "UNAVAILABLE"
	CodeNotSupported Code = "ENOTSUP"
	CodeIO           Code = "EIO"
)

// Error is an error with a wire code. Two *Error values match under
// errors.Is when their codes are equal and the target has no message, so
// errors.Is(err, wire.ErrNotFound) holds for any ENOENT that crossed the wire.
type Error struct {
	Code Code   `json:"code"`
	Msg  string `json:"msg,omitempty"`
	// Leader, on NOTLEADER, is the address of the metaserver that leads,
	// when the refusing one knows it.
	Leader string `json:"leader,omitempty"`
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return string(e.Code)
	}
	return e.Msg + ": " + string(e.Code)
}

// Is reports whether target is the sentinel for e's code, or the io/fs
// sentinel of the same meaning (fs.ErrNotExist for ENOENT, fs.ErrExist for
// EEXIST, fs.ErrPermission for EACCES and EPERM, fs.ErrInvalid for
// EINVAL), so programs outside this module can match reelfs errors with
// the standard library's sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Code == CodeNotFound
	case fs.ErrExist:
		return e.Code == CodeExist
	case fs.ErrPermission:
		return e.Code == CodeAccess || e.Code == CodePerm
	case fs.ErrInvalid:
		return e.Code == CodeInvalid
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == "" && t.Leader == ""
}

// Sentinel errors, one per code. Compare with errors.Is.
var (
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrExist        = &Error{Code: CodeExist}
	ErrNotDir       = &Error{Code: CodeNotDir}
	ErrIsDir        = &Error{Code: CodeIsDir}
	ErrNotEmpty     = &Error{Code: CodeNotEmpty}
	ErrInvalid      = &Error{Code: CodeInvalid}
	ErrNameTooLong  = &Error{Code: CodeNameTooLong}
	ErrPerm         = &Error{Code: CodePerm}
	ErrAccess       = &Error{Code: CodeAccess}
	ErrNoAttr       = &Error{Code: CodeNoAttr}
	ErrRange        = &Error{Code: CodeRange}
	ErrNoSpace      = &Error{Code: CodeNoSpace}
	ErrChecksum     = &Error{Code: CodeChecksum}
	ErrNotLeader    = &Error{Code: CodeNotLeader}
	ErrStaleEpoch   = &Error{Code: CodeStaleEpoch}
	ErrUnauthorized = &Error{Code: CodeUnauthorized}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrNotSupported = &Error{Code: CodeNotSupported}
	ErrIO           = &Error{Code: CodeIO}
)

// Errorf returns an error carrying sentinel's code and a formatted message.
func Errorf(sentinel *Error, format string, args ...any) error {
	return &Error{Code: sentinel.Code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code of err, or CodeIO for errors without one.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeIO
}

// Transient reports whether a call that failed with err may succeed when
// retried unchanged: the peer was unreachable, overloaded or not the leader.
func Transient(err error) bool {
	switch CodeOf(err) {
	case CodeUnavailable, CodeNotLeader:
		return true
	}
	return false
}

// HTTPStatus is the status code a server answers with for code.
func HTTPStatus(c Code) int {
	switch c {
	case CodeNotFound, CodeNoAttr:
		return 404
	case CodeExist, CodeNotEmpty:
		return 409
	case CodeInvalid, CodeNameTooLong, CodeNotDir, CodeIsDir, CodeRange:
		return 400
	case CodePerm, CodeAccess:
		return 403
	case CodeUnauthorized:
		return 401
	case CodeNoSpace:
		return 507
	case CodeNotLeader, CodeStaleEpoch, CodeUnavailable:
		return 503
	case CodeNotSupported:
		return 501
	}
	return 500
}
