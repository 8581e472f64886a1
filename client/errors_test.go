package client

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/reelfs/reelfs/internal/wire"
)

func TestPublicErrors(t *testing.T) {
	tests := []struct {
		code   *wire.Error
		target error
	}{
		{wire.ErrNotFound, fs.ErrNotExist},
		{wire.ErrExist, fs.ErrExist},
		{wire.ErrAccess, fs.ErrPermission},
		{wire.ErrPerm, fs.ErrPermission},
		{wire.ErrInvalid, fs.ErrInvalid},
		{wire.ErrUnavailable, ErrUnavailable},
		{wire.ErrNoSpace, ErrNoSpace},
		{wire.ErrChecksum, ErrChecksum},
		{wire.ErrNotDir, ErrNotDir},
		{wire.ErrIsDir, ErrIsDir},
		{wire.ErrNotEmpty, ErrNotEmpty},
		{wire.ErrUnauthorized, ErrUnauthorized},
	}
	all := []error{fs.ErrNotExist, fs.ErrExist, fs.ErrPermission, fs.ErrInvalid,
		ErrUnavailable, ErrNoSpace, ErrChecksum, ErrNotDir, ErrIsDir, ErrNotEmpty, ErrUnauthorized}
	for _, tt := range tests {
		err := fmt.Errorf("op: %w", wire.Errorf(tt.code, "from the server"))
		for _, target := range all {
			want := target == tt.target || (tt.target == fs.ErrPermission && target == fs.ErrPermission)
			if got := errors.Is(err, target); got != want {
				t.Errorf("errors.Is(%s error, %v) = %v, want %v", tt.code.Code, target, got, want)
			}
		}
	}
	if !errors.Is(ErrReadOnly, fs.ErrPermission) {
		t.Errorf("ErrReadOnly does not match fs.ErrPermission")
	}
}
