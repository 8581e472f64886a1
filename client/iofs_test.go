package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"testing"
	"testing/fstest"
	"text/template"
	"time"
)

// putTestFile writes data to the reelfs path p, making its parents.
func putTestFile(t *testing.T, c *Client, p string, data []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.MkdirAll(ctx, path.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := c.CreatePath(ctx, p, 0o644, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestFSPassesFSTest runs testing/fstest against a tree on a real
// cluster: nested directories, an empty directory, an empty file, a file
// of several blocks and a symbolic link.
func TestFSPassesFSTest(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	// Small blocks: the big file spans several, and fstest's many small
	// reads stay quick under the race detector.
	c := cl.client(func(cfg *Config) { cfg.BlockSize = 64 << 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// fstest reads every file a byte at a time (iotest.TestReader), one
	// client read each: the big file spans a few block boundaries, one
	// under the race detector's tenfold slowdown.
	big := 4<<16 + 12345
	if raceEnabled {
		big = 1<<16 + 1234
	}
	want := map[string][]byte{
		"media/a.txt":          []byte("hello reelfs\n"),
		"media/films/big.bin":  randomBytes(big, 1),
		"media/films/empty":    {},
		"media/x/y/z/deep":     randomBytes(3000, 2),
		"media/tmpl/page.tmpl": []byte(`{{define "page"}}<h1>{{.}}</h1>{{end}}`),
	}
	for p, b := range want {
		putTestFile(t, c, "/"+p, b)
	}
	if _, err := c.MkdirAll(ctx, "/media/emptydir", 0o755); err != nil {
		t.Fatal(err)
	}
	films, err := c.Resolve(ctx, "/media/films")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Symlink(ctx, films.Ino, "link", "../a.txt", 0, 0); err != nil {
		t.Fatal(err)
	}

	fsys := NewFS(ctx, c, "/media")
	done := make(chan error, 1)
	go func() {
		done <- fstest.TestFS(fsys, "a.txt", "films/big.bin", "films/empty", "x/y/z/deep", "emptydir", "films/link", "tmpl/page.tmpl")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("fstest.TestFS did not finish in 90 s")
	}

	if target, err := fs.ReadLink(fsys, "films/link"); err != nil || target != "../a.txt" {
		t.Fatalf("ReadLink: %q %v", target, err)
	}
	if fi, err := fs.Lstat(fsys, "films/link"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Fatalf("Lstat of a link: %v %v", fi, err)
	}
	if fi, err := fs.Stat(fsys, "films/link"); err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(want["media/a.txt"])) {
		t.Fatalf("Stat through a link: %v %v", fi, err)
	}

	// The standard library's consumers of fs.FS work unchanged.
	var walked []string
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			walked = append(walked, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(walked, " ") != "a.txt films/big.bin films/empty tmpl/page.tmpl x/y/z/deep" {
		t.Fatalf("WalkDir: %q", walked)
	}
	for p, b := range want {
		got, err := fs.ReadFile(fsys, strings.TrimPrefix(p, "media/"))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("ReadFile %s: %v, %d bytes, want %d", p, err, len(got), len(b))
		}
	}
	tmpl, err := template.ParseFS(fsys, "tmpl/*.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := tmpl.ExecuteTemplate(&page, "page", "hi"); err != nil || page.String() != "<h1>hi</h1>" {
		t.Fatalf("template: %v %q", err, page.String())
	}
	srv := httptest.NewServer(http.FileServer(http.FS(fsys)))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/films/big.bin", nil)
	req.Header.Set("Range", "bytes=65530-65549")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want["media/films/big.bin"][65530:65550]) {
		t.Fatalf("http.FS range: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestFSErrorsAndEdges(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(nil)
	ctx := context.Background()
	data := randomBytes(100000, 3)
	putTestFile(t, c, "/d/f", data)
	fsys := NewFS(ctx, c, "/")

	for _, tt := range []struct {
		name string
		want error
	}{
		{"d/missing", fs.ErrNotExist},
		{"/d/f", fs.ErrInvalid},
		{"d/../d/f", fs.ErrInvalid},
		{"d/f/under", ErrNotDir},
	} {
		_, err := fsys.Open(tt.name)
		var pe *fs.PathError
		if !errors.Is(err, tt.want) || !errors.As(err, &pe) || pe.Path != tt.name {
			t.Errorf("Open(%q): %v, want a PathError matching %v", tt.name, err, tt.want)
		}
	}
	if _, err := fsys.ReadFile("d"); !errors.Is(err, ErrIsDir) {
		t.Errorf("ReadFile of a directory: %v", err)
	}
	if _, err := fsys.ReadDir("d/f"); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir of a file: %v", err)
	}
	if _, err := fsys.Sub("d/f"); !errors.Is(err, ErrNotDir) {
		t.Errorf("Sub of a file: %v", err)
	}
	if _, err := fsys.ReadLink("d/f"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink of a file: %v", err)
	}
	if _, err := fsys.ReadLink("d/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLink of a missing name: %v", err)
	}

	// Read past the end, again and again: 0, io.EOF each time.
	f, err := fsys.Open("d/f")
	if err != nil {
		t.Fatal(err)
	}
	s := f.(io.Seeker)
	if off, err := s.Seek(10, io.SeekEnd); err != nil || off != int64(len(data))+10 {
		t.Fatalf("Seek past end: %d %v", off, err)
	}
	for i := 0; i < 3; i++ {
		if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("Read past end: %d %v", n, err)
		}
	}
	if n, err := f.(io.ReaderAt).ReadAt(make([]byte, 10), int64(len(data))-4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt across the end: %d %v", n, err)
	}
	s.Seek(99, io.SeekStart)
	var out bytes.Buffer
	if n, err := io.Copy(&out, f); err != nil || n != int64(len(data))-99 || !bytes.Equal(out.Bytes(), data[99:]) {
		t.Fatalf("io.Copy (WriterTo) from offset 99: %d %v", n, err)
	}
	if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after WriterTo: %d %v", n, err)
	}
	f.Close()

	// A directory handle hands its entries out n at a time, then io.EOF.
	for i := 0; i < 5; i++ {
		putTestFile(t, c, "/many/"+string(rune('a'+i)), []byte{byte(i)})
	}
	d, err := fsys.Open("many")
	if err != nil {
		t.Fatal(err)
	}
	rd := d.(fs.ReadDirFile)
	var names []string
	for i := 0; i < 10; i++ {
		es, err := rd.ReadDir(2)
		for _, e := range es {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil || len(es) == 0 {
			t.Fatalf("ReadDir(2): %d entries, %v", len(es), err)
		}
	}
	if strings.Join(names, "") != "abcde" {
		t.Fatalf("ReadDir(2) in turns: %q", names)
	}
	if es, err := rd.ReadDir(-1); len(es) != 0 || err != nil {
		t.Fatalf("ReadDir(-1) at the end: %d %v", len(es), err)
	}
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, ErrIsDir) {
		t.Fatalf("Read of a directory: %v", err)
	}
	d.Close()
	if _, err := rd.ReadDir(1); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("ReadDir after Close: %v", err)
	}
}

// TestFileIOCopies: io.Copy through FileIO takes its WriterTo and
// ReaderFrom and moves the same bytes as plain Read and Write.
func TestFileIOCopies(t *testing.T) {
	cl := newCluster(t, clusterOpts{})
	c := cl.client(func(cfg *Config) { cfg.BlockSize = 1 << 20 })
	ctx := context.Background()
	data := randomBytes(5<<20+333, 4)
	f, err := c.CreatePath(ctx, "/copy", 0o644, os.O_RDWR|os.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	x := f.IO(ctx)
	x.Seek(100, io.SeekStart)
	// a plain reader, so io.Copy uses FileIO.ReadFrom
	if n, err := io.Copy(x, io.MultiReader(bytes.NewReader(data[:7]), bytes.NewReader(data[7:]))); err != nil || n != int64(len(data)) {
		t.Fatalf("io.Copy in: %d %v", n, err)
	}
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := c.OpenPath(ctx, "/copy", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	y := g.IO(ctx)
	var out bytes.Buffer
	if n, err := io.Copy(&out, y); err != nil || n != int64(len(data))+100 {
		t.Fatalf("io.Copy out: %d %v", n, err)
	}
	want := append(make([]byte, 100), data...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("io.Copy out: bytes differ")
	}
	if off, _ := y.Seek(0, io.SeekCurrent); off != int64(len(want)) {
		t.Fatalf("offset after WriteTo: %d", off)
	}
}
