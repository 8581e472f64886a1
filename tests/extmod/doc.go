// Package extmod is a Go module of its own that uses the reelfs SDK the
// way a program outside the reelfs module does: through its exported API
// only (internal/ cannot be imported from here), with the module replaced
// by this checkout. Its test proves that such a program can tell "not
// found" from "cluster down" with errors.Is. `make extmod` runs it; the
// root module's `go vet ./...` and `go test ./...` do not descend into it.
package extmod
