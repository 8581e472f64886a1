package httpd

import (
	"context"
	"os"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/internal/wire"
)

// Compile-time checks: the SDK satisfies the namespace and file interfaces
// as it is; only its concrete *client.File return needs the adapter below.
var (
	_ Namespace  = (*client.Client)(nil)
	_ File       = (*client.File)(nil)
	_ FileSystem = clientFS{}
)

// FromClient serves a reelfs cluster through the SDK client c.
func FromClient(c *client.Client) FileSystem { return clientFS{c} }

// clientFS adapts *client.Client: its Open, ResolveOpen and CreatePath return the
// concrete *client.File, which is returned here as a File (and a nil
// interface on error, never a typed nil).
type clientFS struct{ *client.Client }

func (c clientFS) Open(ctx context.Context, ino uint64, flags int) (File, error) {
	f, err := c.Client.Open(ctx, ino, flags)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (c clientFS) ResolveOpen(ctx context.Context, path string) (wire.Attr, File, error) {
	attr, f, err := c.Client.ResolveOpen(ctx, path, os.O_RDONLY)
	if err != nil || f == nil {
		return attr, nil, err
	}
	return attr, f, nil
}

func (c clientFS) CreatePath(ctx context.Context, path string, mode uint32, flags int) (File, error) {
	f, err := c.Client.CreatePath(ctx, path, mode, flags)
	if err != nil {
		return nil, err
	}
	return f, nil
}
