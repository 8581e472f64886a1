package httpd

import "errors"

// Sentinel errors of the public HTTP server. Handlers turn them into short
// plain-text replies; callers of the package match them with errors.Is.
var (
	// ErrConfig wraps every Config.Validate failure.
	ErrConfig = errors.New("httpd: invalid config")

	// ErrBadPath means a request path cannot name a file: it does not start
	// with "/", holds a ".." component, a NUL, an encoded slash or a bad
	// percent escape. The handler answers 400 with the wrapped reason.
	ErrBadPath = errors.New("httpd: bad path")

	// ErrSignature means a read of a protected server lacks a valid signed
	// URL: the e/s parameters are missing, expired or do not match. The
	// handler answers 403 with the wrapped reason.
	ErrSignature = errors.New("httpd: bad signature")

	// ErrRunning is returned by Run when the server already ran or was
	// closed: a Server serves once.
	ErrRunning = errors.New("httpd: server already running or closed")

	// ErrShortRead means the file ended before the bytes a response had
	// promised (it was truncated while being streamed); the connection is
	// cut so the client sees an incomplete body, never wrong bytes.
	ErrShortRead = errors.New("httpd: file shorter than its response")

	// ErrAborted means a streamed response or upload was cut off: the client
	// went away or the server is shutting down.
	ErrAborted = errors.New("httpd: transfer aborted")
)
