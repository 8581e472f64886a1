package extmod

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/metaserver"
)

// startCluster runs a metaserver and a group of two chunkservers in this
// process; stopMeta stops the metaserver early (the cluster is then
// unreachable for a client).
func startCluster(t *testing.T) (meta string, stopMeta func()) {
	t.Helper()
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir, mcfg.Listen = t.TempDir(), "127.0.0.1:0"
	ms, err := metaserver.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	stopMeta = serve(t, ms.Run)
	for i, id := range []string{"cs1", "cs2"} {
		ccfg := chunkserver.DefaultConfig()
		ccfg.Dir, ccfg.Listen, ccfg.Meta, ccfg.Group = t.TempDir(), "127.0.0.1:0", ms.Addr(), 1
		ccfg.ID, ccfg.MinCopies, ccfg.HeartbeatEvery = id, 2, 50*time.Millisecond
		cs, err := chunkserver.New(ccfg)
		if err != nil {
			t.Fatalf("chunkserver %d: %v", i, err)
		}
		serve(t, cs.Run)
	}
	return ms.Addr(), stopMeta
}

// serve runs fn until the returned function (also run at cleanup) stops it.
func serve(t *testing.T, fn func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func newClient(t *testing.T, meta string) *client.Client {
	t.Helper()
	cfg := client.DefaultConfig()
	cfg.Meta = meta
	cfg.RetryTimeout = 2 * time.Second
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestErrorsFromOutside matches the SDK's errors with errors.Is against
// the io/fs sentinels and the client's own, from another module.
func TestErrorsFromOutside(t *testing.T) {
	meta, stopMeta := startCluster(t)
	c := newClient(t, meta)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// wait for a group that takes writes
	var f *client.File
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if f, err = c.CreatePath(ctx, "/a.txt", 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL); err == nil {
			if _, err = io.WriteString(f.IO(ctx), "hello"); err == nil {
				err = f.Close(ctx)
			}
		}
		if err == nil {
			break
		}
		if !errors.Is(err, client.ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("first write: %v", err)
		}
	}
	if _, err := c.MkdirAll(ctx, "/dir", 0o755); err != nil {
		t.Fatal(err)
	}

	var attr client.Attr // the attribute type is nameable from outside
	attr, err = c.Resolve(ctx, "/a.txt")
	if err != nil || attr.Size != 5 || client.FileMode(attr.Mode) != 0o644 {
		t.Fatalf("Resolve: %+v %v", attr, err)
	}

	for _, tt := range []struct {
		what string
		err  error
		is   []error
		not  []error
	}{
		{"missing path", errOf(c.Resolve(ctx, "/missing")), []error{fs.ErrNotExist}, []error{client.ErrUnavailable, fs.ErrExist}},
		{"exclusive create of an existing file", errOf(c.CreatePath(ctx, "/a.txt", 0o644, os.O_WRONLY|os.O_CREATE|os.O_EXCL)), []error{fs.ErrExist}, []error{fs.ErrNotExist}},
		{"mkdir under a file", errOf(c.MkdirAll(ctx, "/a.txt/sub", 0o755)), []error{client.ErrNotDir}, []error{fs.ErrNotExist}},
		{"open a directory as a file", errOf(c.OpenPath(ctx, "/dir", os.O_RDONLY)), []error{client.ErrIsDir}, nil},
		{"remove a non-empty directory", removeNonEmpty(ctx, t, c), []error{client.ErrNotEmpty}, nil},
		{"io/fs open of a missing name", errOf(client.NewFS(ctx, c, "/").Open("nope")), []error{fs.ErrNotExist}, nil},
		{"io/fs invalid name", errOf(client.NewFS(ctx, c, "/").Open("/abs")), []error{fs.ErrInvalid}, nil},
	} {
		for _, want := range tt.is {
			if !errors.Is(tt.err, want) {
				t.Errorf("%s: %v does not match %v", tt.what, tt.err, want)
			}
		}
		for _, no := range tt.not {
			if errors.Is(tt.err, no) {
				t.Errorf("%s: %v matches %v", tt.what, tt.err, no)
			}
		}
	}

	// io/fs from outside: fstest over the tree
	if err := fstest.TestFS(client.NewFS(ctx, c, "/"), "a.txt", "dir"); err != nil {
		t.Fatal(err)
	}

	// The cluster down is ErrUnavailable, not "not found".
	stopMeta()
	_, err = c.Resolve(ctx, "/a.txt")
	if !errors.Is(err, client.ErrUnavailable) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("metaserver stopped: %v, want ErrUnavailable", err)
	}
}

func removeNonEmpty(ctx context.Context, t *testing.T, c *client.Client) error {
	f, err := c.CreatePath(ctx, "/dir/x", 0o644, os.O_WRONLY|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return c.RemovePath(ctx, "/dir", false)
}

func errOf[T any](_ T, err error) error { return err }
