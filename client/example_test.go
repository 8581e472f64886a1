package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"strings"
	"time"

	"github.com/reelfs/reelfs/client"
)

// connect starts a throwaway cluster for an example and returns a client
// of it. A program connects to its own cluster the same way, with Meta
// set to its metaserver (for example "127.0.0.1:9400").
func connect() (*client.Client, func()) {
	meta, stop, err := client.StartTestCluster()
	if err != nil {
		log.Fatal(err)
	}
	cfg := client.DefaultConfig()
	cfg.Meta = meta
	c, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c, func() { c.Close(); stop() }
}

// Put a file: create it, copy bytes in, and close. Close returns once
// the data and metadata are durable by the cluster's write quorum.
func Example_putFile() {
	c, done := connect()
	defer done()
	ctx := context.Background()

	if _, err := c.MkdirAll(ctx, "/media", 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := c.CreatePath(ctx, "/media/clip.txt", 0o644, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		log.Fatal(err)
	}
	n, err := io.Copy(f.IO(ctx), strings.NewReader("frames and more frames\n"))
	if err != nil {
		f.Close(ctx)
		log.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		log.Fatal(err)
	}
	attr, err := c.Resolve(ctx, "/media/clip.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", n, "bytes; size", attr.Size)

	// Errors match the standard library's and the SDK's sentinels.
	_, err = c.Resolve(ctx, "/media/missing.mp4")
	fmt.Println("missing is fs.ErrNotExist:", errors.Is(err, fs.ErrNotExist))
	fmt.Println("missing is client.ErrUnavailable:", errors.Is(err, client.ErrUnavailable))
	// Output:
	// wrote 23 bytes; size 23
	// missing is fs.ErrNotExist: true
	// missing is client.ErrUnavailable: false
}

// Stream a range: a player's seek is one ReadAt (or a SectionReader over
// the file), which costs the blocks it covers, not a read from the start.
func Example_streamRange() {
	c, done := connect()
	defer done()
	ctx := context.Background()

	f, err := c.CreatePath(ctx, "/film.txt", 0o644, os.O_WRONLY|os.O_CREATE)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(f.IO(ctx), strings.Repeat("0123456789", 100000)) // 1,000,000 bytes
	if err := f.Close(ctx); err != nil {
		log.Fatal(err)
	}

	r, err := c.OpenPath(ctx, "/film.txt", os.O_RDONLY)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	// bytes 500,003 to 500,012, as for "Range: bytes=500003-500012"
	section := io.NewSectionReader(r.IO(ctx), 500003, 10)
	var b strings.Builder
	if _, err := io.Copy(&b, section); err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.String())
	// Output: 3456789012
}

// Walk a tree: NewFS gives an io/fs.FS, so fs.WalkDir, fs.Glob,
// http.FS and template.ParseFS work on reelfs unchanged.
func Example_walkTree() {
	c, done := connect()
	defer done()
	ctx := context.Background()

	for _, p := range []string{"/shows/s01/e01.mp4", "/shows/s01/e02.mp4", "/shows/s02/e01.mp4"} {
		if _, err := c.MkdirAll(ctx, p[:strings.LastIndex(p, "/")], 0o755); err != nil {
			log.Fatal(err)
		}
		f, err := c.CreatePath(ctx, p, 0o644, os.O_WRONLY|os.O_CREATE)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(f.IO(ctx), "content of %s", p)
		if err := f.Close(ctx); err != nil {
			log.Fatal(err)
		}
	}

	fsys := client.NewFS(ctx, c, "/shows")
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Println(p, info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	matches, _ := fs.Glob(fsys, "*/e01.mp4")
	fmt.Println(matches)
	// Output:
	// . drwxr-xr-x 0
	// s01 drwxr-xr-x 0
	// s01/e01.mp4 -rw-r--r-- 29
	// s01/e02.mp4 -rw-r--r-- 29
	// s02 drwxr-xr-x 0
	// s02/e01.mp4 -rw-r--r-- 29
	// [s01/e01.mp4 s02/e01.mp4]
}

// Watch a recording grow: the recorder flushes each segment, which makes
// it visible to every client; a watcher polls the size and reads only what
// was added.
func Example_watchRecording() {
	c, done := connect()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rec, err := c.CreatePath(ctx, "/live.ts", 0o644, os.O_WRONLY|os.O_CREATE)
	if err != nil {
		log.Fatal(err)
	}
	segments := []string{"[segment 1]", "[segment 2]", "[segment 3]"}
	recorded := make(chan error, 1)
	go func() { // the recorder: append a segment, flush, wait a little
		w := rec.IO(ctx)
		for _, s := range segments {
			if _, err := io.WriteString(w, s); err != nil {
				recorded <- err
				return
			}
			if err := rec.Flush(ctx); err != nil {
				recorded <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		recorded <- rec.Close(ctx)
	}()

	// The watcher: poll the size; read the new bytes when it grows.
	var seen []byte
	want := len(strings.Join(segments, ""))
	for len(seen) < want && ctx.Err() == nil {
		attr, err := c.Resolve(ctx, "/live.ts")
		if err != nil {
			log.Fatal(err)
		}
		if int(attr.Size) > len(seen) {
			f, err := c.Open(ctx, attr.Ino, os.O_RDONLY)
			if err != nil {
				log.Fatal(err)
			}
			buf := make([]byte, int(attr.Size)-len(seen))
			n, err := f.ReadAt(ctx, buf, int64(len(seen)))
			f.Close(ctx)
			if err != nil && err != io.EOF {
				log.Fatal(err)
			}
			seen = append(seen, buf[:n]...)
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-recorded; err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(seen))
	// Output: [segment 1][segment 2][segment 3]
}
