package metaserver

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reelfs/reelfs/internal/wire"
)

// tree is the fixture of the rename table:
//
//	/a/ f  sub/ x
//	/b/ g
//	/e/            (empty)
//	/h
type tree struct {
	a, f, sub, x, b, g, e, h uint64
}

func newTree(t *testing.T, c *core) tree {
	t.Helper()
	var tr tree
	tr.a = mkdir(t, c, wire.RootIno, "a").Ino
	tr.f = mkfile(t, c, tr.a, "f").Ino
	tr.sub = mkdir(t, c, tr.a, "sub").Ino
	tr.x = mkfile(t, c, tr.sub, "x").Ino
	tr.b = mkdir(t, c, wire.RootIno, "b").Ino
	tr.g = mkfile(t, c, tr.b, "g").Ino
	tr.e = mkdir(t, c, wire.RootIno, "e").Ino
	tr.h = mkfile(t, c, wire.RootIno, "h").Ino
	return tr
}

func TestRename(t *testing.T) {
	const root = wire.RootIno
	cases := []struct {
		name  string
		from  func(tree) (uint64, string)
		to    func(tree) (uint64, string)
		flags uint32
		want  wire.Code
		check func(t *testing.T, c *core, tr tree)
	}{
		{
			name: "file over file",
			from: func(tr tree) (uint64, string) { return tr.a, "f" },
			to:   func(tr tree) (uint64, string) { return tr.b, "g" },
			check: func(t *testing.T, c *core, tr tree) {
				if got := lookupIno(t, c, tr.b, "g"); got != tr.f {
					t.Fatalf("b/g is %d, want %d", got, tr.f)
				}
				gone(t, c, tr.g)
				_, err := c.lookup(bg, &wire.LookupReq{Parent: tr.a, Name: "f"})
				wantCode(t, err, wire.CodeNotFound)
			},
		},
		{
			name: "dir over empty dir",
			from: func(tr tree) (uint64, string) { return tr.a, "sub" },
			to:   func(tr tree) (uint64, string) { return root, "e" },
			check: func(t *testing.T, c *core, tr tree) {
				gone(t, c, tr.e)
				if got := lookupIno(t, c, root, "e"); got != tr.sub {
					t.Fatalf("/e is %d, want %d", got, tr.sub)
				}
				if n := getattr(t, c, tr.a).Nlink; n != 2 {
					t.Fatalf("a nlink %d, want 2", n)
				}
				if n := getattr(t, c, root).Nlink; n != 5 { // a, b, e(=sub)
					t.Fatalf("root nlink %d, want 5", n)
				}
				if got := lookupIno(t, c, tr.sub, "x"); got != tr.x {
					t.Fatalf("moved dir lost its entry")
				}
			},
		},
		{
			name: "dir over non-empty dir",
			from: func(tr tree) (uint64, string) { return root, "e" },
			to:   func(tr tree) (uint64, string) { return root, "a" },
			want: wire.CodeNotEmpty,
		},
		{
			name: "file over dir",
			from: func(tr tree) (uint64, string) { return root, "h" },
			to:   func(tr tree) (uint64, string) { return root, "e" },
			want: wire.CodeIsDir,
		},
		{
			name: "dir over file",
			from: func(tr tree) (uint64, string) { return root, "e" },
			to:   func(tr tree) (uint64, string) { return root, "h" },
			want: wire.CodeNotDir,
		},
		{
			name: "dir into itself",
			from: func(tr tree) (uint64, string) { return root, "a" },
			to:   func(tr tree) (uint64, string) { return tr.a, "new" },
			want: wire.CodeInvalid,
		},
		{
			name: "dir into its descendant",
			from: func(tr tree) (uint64, string) { return root, "a" },
			to:   func(tr tree) (uint64, string) { return tr.sub, "new" },
			want: wire.CodeInvalid,
		},
		{
			name:  "noreplace over existing",
			from:  func(tr tree) (uint64, string) { return root, "h" },
			to:    func(tr tree) (uint64, string) { return tr.b, "g" },
			flags: wire.RenameNoReplace,
			want:  wire.CodeExist,
		},
		{
			name:  "noreplace to a new name",
			from:  func(tr tree) (uint64, string) { return root, "h" },
			to:    func(tr tree) (uint64, string) { return tr.b, "h2" },
			flags: wire.RenameNoReplace,
			check: func(t *testing.T, c *core, tr tree) {
				if got := lookupIno(t, c, tr.b, "h2"); got != tr.h {
					t.Fatalf("b/h2 is %d", got)
				}
			},
		},
		{
			name:  "exchange file and dir across dirs",
			from:  func(tr tree) (uint64, string) { return tr.a, "f" },
			to:    func(tr tree) (uint64, string) { return root, "b" },
			flags: wire.RenameExchange,
			check: func(t *testing.T, c *core, tr tree) {
				if got := lookupIno(t, c, tr.a, "f"); got != tr.b {
					t.Fatalf("a/f is %d, want dir %d", got, tr.b)
				}
				if got := lookupIno(t, c, root, "b"); got != tr.f {
					t.Fatalf("/b is %d, want file %d", got, tr.f)
				}
				if n := getattr(t, c, tr.a).Nlink; n != 4 {
					t.Fatalf("a nlink %d, want 4", n)
				}
				if n := getattr(t, c, root).Nlink; n != 4 {
					t.Fatalf("root nlink %d, want 4", n)
				}
				// b now lives in a: moving a below b must fail.
				err := c.rename(bg, &wire.RenameReq{Parent: root, Name: "a", NewParent: tr.b, NewName: "z"})
				wantCode(t, err, wire.CodeInvalid)
			},
		},
		{
			name:  "exchange with missing target",
			from:  func(tr tree) (uint64, string) { return root, "h" },
			to:    func(tr tree) (uint64, string) { return root, "nope" },
			flags: wire.RenameExchange,
			want:  wire.CodeNotFound,
		},
		{
			name:  "exchange dir with its descendant",
			from:  func(tr tree) (uint64, string) { return root, "a" },
			to:    func(tr tree) (uint64, string) { return tr.a, "sub" },
			flags: wire.RenameExchange,
			want:  wire.CodeInvalid,
		},
		{
			name: "onto itself",
			from: func(tr tree) (uint64, string) { return root, "h" },
			to:   func(tr tree) (uint64, string) { return root, "h" },
			check: func(t *testing.T, c *core, tr tree) {
				if got := lookupIno(t, c, root, "h"); got != tr.h {
					t.Fatalf("/h changed")
				}
			},
		},
		{
			name: "dir across dirs",
			from: func(tr tree) (uint64, string) { return tr.a, "sub" },
			to:   func(tr tree) (uint64, string) { return tr.b, "sub2" },
			check: func(t *testing.T, c *core, tr tree) {
				if n := getattr(t, c, tr.a).Nlink; n != 2 {
					t.Fatalf("a nlink %d, want 2", n)
				}
				if n := getattr(t, c, tr.b).Nlink; n != 3 {
					t.Fatalf("b nlink %d, want 3", n)
				}
				if n := getattr(t, c, tr.sub).Nlink; n != 2 {
					t.Fatalf("sub nlink %d, want 2", n)
				}
				// The parent pointer moved: b cannot go below sub now.
				err := c.rename(bg, &wire.RenameReq{Parent: root, Name: "b", NewParent: tr.sub, NewName: "z"})
				wantCode(t, err, wire.CodeInvalid)
				// ... but a can.
				err = c.rename(bg, &wire.RenameReq{Parent: root, Name: "a", NewParent: tr.sub, NewName: "z"})
				wantCode(t, err, "")
			},
		},
		{
			name:  "both flags",
			from:  func(tr tree) (uint64, string) { return root, "h" },
			to:    func(tr tree) (uint64, string) { return root, "h3" },
			flags: wire.RenameExchange | wire.RenameNoReplace,
			want:  wire.CodeInvalid,
		},
		{
			name: "missing source",
			from: func(tr tree) (uint64, string) { return root, "nope" },
			to:   func(tr tree) (uint64, string) { return root, "h3" },
			want: wire.CodeNotFound,
		},
		{
			name: "target parent is a file",
			from: func(tr tree) (uint64, string) { return root, "e" },
			to:   func(tr tree) (uint64, string) { return tr.h, "z" },
			want: wire.CodeNotDir,
		},
		{
			name: "bad new name",
			from: func(tr tree) (uint64, string) { return root, "h" },
			to:   func(tr tree) (uint64, string) { return root, ".." },
			want: wire.CodeInvalid,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestCore(t)
			tr := newTree(t, c)
			before := getattr(t, c, wire.RootIno)
			p, n := tc.from(tr)
			np, nn := tc.to(tr)
			err := c.rename(bg, &wire.RenameReq{Parent: p, Name: n, NewParent: np, NewName: nn, Flags: tc.flags})
			wantCode(t, err, tc.want)
			if tc.want != "" {
				if after := getattr(t, c, wire.RootIno); after != before {
					t.Fatalf("failed rename changed the root: %+v -> %+v", before, after)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, c, tr)
			}
		})
	}
}

func TestRenameOverOpenFileKeepsOrphan(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	if _, err := c.open(bg, &wire.OpenReq{Ino: tr.g, Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	err := c.rename(bg, &wire.RenameReq{Parent: wire.RootIno, Name: "h", NewParent: tr.b, NewName: "g", Session: "s1"})
	wantCode(t, err, "")
	if a := getattr(t, c, tr.g); a.Nlink != 0 {
		t.Fatalf("replaced open file has nlink %d", a.Nlink)
	}
	if !has(t, c, keyOrphan(tr.g)) {
		t.Fatal("no orphan mark")
	}
	wantCode(t, c.release(bg, &wire.OpenReq{Ino: tr.g, Session: "s1"}), "")
	gone(t, c, tr.g)
	if has(t, c, keyOrphan(tr.g)) {
		t.Fatal("orphan mark outlived the inode")
	}
}

func TestRmdirAndUnlink(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "a"}), wire.CodeNotEmpty)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "h"}), wire.CodeNotDir)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "zz"}), wire.CodeNotFound)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "."}), wire.CodeInvalid)
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "e"}), wire.CodeIsDir)
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: tr.h, Name: "x"}), wire.CodeNotDir)

	rootBefore := getattr(t, c, wire.RootIno)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "e"}), "")
	gone(t, c, tr.e)
	rootAfter := getattr(t, c, wire.RootIno)
	if rootAfter.Nlink != rootBefore.Nlink-1 {
		t.Fatalf("root nlink %d -> %d", rootBefore.Nlink, rootAfter.Nlink)
	}
	if rootAfter.Mtime < rootBefore.Mtime || rootAfter.Ctime < rootBefore.Ctime {
		t.Fatal("rmdir did not touch the parent's times")
	}
	inodes := c.ctr.inodes
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: tr.sub, Name: "x"}), "")
	gone(t, c, tr.x)
	wantCode(t, c.rmdir(bg, &wire.UnlinkReq{Parent: tr.a, Name: "sub"}), "")
	if got := getattr(t, c, tr.a).Nlink; got != 2 {
		t.Fatalf("a nlink %d after rmdir of its subdir", got)
	}
	if c.ctr.inodes != inodes-2 {
		t.Fatalf("inode count %d, want %d", c.ctr.inodes, inodes-2)
	}
}

// TestRemoveReplyParent checks that unlink and rmdir answer with the
// parent's attributes as a GETATTR right after sees them: a mount answers
// the kernel's next GETATTR of the directory with them.
func TestRemoveReplyParent(t *testing.T) {
	c, clk := newTestCore(t)
	tr := newTree(t, c)
	clk.advance(time.Second)
	rep, err := c.unlinkReply(bg, &wire.UnlinkReq{Parent: tr.a, Name: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if got := getattr(t, c, tr.a); rep.Parent != got {
		t.Fatalf("unlink answered parent %+v, getattr says %+v", rep.Parent, got)
	}
	clk.advance(time.Second)
	before := rep.Parent
	if _, err := c.unlinkReply(bg, &wire.UnlinkReq{Parent: tr.sub, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	rep, err = c.rmdirReply(bg, &wire.UnlinkReq{Parent: tr.a, Name: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	if got := getattr(t, c, tr.a); rep.Parent != got {
		t.Fatalf("rmdir answered parent %+v, getattr says %+v", rep.Parent, got)
	}
	if rep.Parent.Nlink != before.Nlink-1 || rep.Parent.Ctime <= before.Ctime {
		t.Fatalf("rmdir answered nlink %d ctime %d, want %d and later than %d", rep.Parent.Nlink, rep.Parent.Ctime, before.Nlink-1, before.Ctime)
	}
	if _, err := c.unlinkReply(bg, &wire.UnlinkReq{Parent: tr.a, Name: "f"}); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("second unlink: %v, want ENOENT", err)
	}
}

func TestHardLinks(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	id := lease(t, c, 1)
	commit(t, c, tr.h, 4096, slice(0, 0, 4096, id))

	a, err := c.link(bg, &wire.LinkReq{Ino: tr.h, NewParent: tr.a, NewName: "hl"})
	wantCode(t, err, "")
	if a.Nlink != 2 {
		t.Fatalf("nlink %d after link", a.Nlink)
	}
	_, err = c.link(bg, &wire.LinkReq{Ino: tr.h, NewParent: tr.a, NewName: "f"})
	wantCode(t, err, wire.CodeExist)
	_, err = c.link(bg, &wire.LinkReq{Ino: tr.a, NewParent: tr.b, NewName: "al"})
	wantCode(t, err, wire.CodePerm)
	_, err = c.link(bg, &wire.LinkReq{Ino: tr.h, NewParent: tr.g, NewName: "z"})
	wantCode(t, err, wire.CodeNotDir)

	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "h"}), "")
	if got := lookupIno(t, c, tr.a, "hl"); got != tr.h {
		t.Fatalf("other link points at %d", got)
	}
	if n := getattr(t, c, tr.h).Nlink; n != 1 {
		t.Fatalf("nlink %d after unlinking one of two links", n)
	}
	rc, err := c.readChunk(bg, &wire.ReadChunkReq{Ino: tr.h})
	if err != nil || len(rc.Slices) != 1 || rc.Slices[0].ID != id {
		t.Fatalf("data behind the other link: %+v, %v", rc, err)
	}
	if len(queuedIDs(t, c)) != 0 {
		t.Fatal("blocks queued while a link remains")
	}
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: tr.a, Name: "hl"}), "")
	gone(t, c, tr.h)
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id}) {
		t.Fatalf("queue %v, want [%d]", q, id)
	}
}

func TestXattrs(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	set := func(name, value string, flags uint32) error {
		return c.setXattr(bg, &wire.XattrReq{Ino: tr.h, Name: name, Value: []byte(value), Flags: flags})
	}
	get := func(name string) (string, error) {
		r, err := c.getXattr(bg, &wire.XattrReq{Ino: tr.h, Name: name})
		return string(r.Value), err
	}
	_, err := get("user.a")
	wantCode(t, err, wire.CodeNoAttr)
	wantCode(t, set("user.a", "1", wire.XattrReplace), wire.CodeNoAttr)
	wantCode(t, set("user.a", "1", wire.XattrCreate), "")
	wantCode(t, set("user.a", "2", wire.XattrCreate), wire.CodeExist)
	wantCode(t, set("user.a", "3", wire.XattrReplace), "")
	wantCode(t, set("user.b", "", 0), "")
	wantCode(t, set("user.c", "x", wire.XattrCreate|wire.XattrReplace), wire.CodeInvalid)
	wantCode(t, set("", "x", 0), wire.CodeInvalid)
	wantCode(t, set(strings.Repeat("n", 256), "x", 0), wire.CodeInvalid)
	wantCode(t, set(strings.Repeat("n", 255), "x", 0), "")
	wantCode(t, set("user.big", strings.Repeat("v", 64<<10+1), 0), wire.CodeInvalid)
	wantCode(t, set("user.max", strings.Repeat("v", 64<<10), 0), "")
	if v, err := get("user.a"); err != nil || v != "3" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if v, err := get("user.b"); err != nil || v != "" {
		t.Fatalf("get empty = %q, %v", v, err)
	}
	l, err := c.listXattr(bg, &wire.InoReq{Ino: tr.h})
	if err != nil || !slices.Equal(l.Names, []string{strings.Repeat("n", 255), "user.a", "user.b", "user.max"}) {
		t.Fatalf("list = %v, %v", l.Names, err)
	}
	wantCode(t, c.removeXattr(bg, &wire.XattrReq{Ino: tr.h, Name: "user.a"}), "")
	wantCode(t, c.removeXattr(bg, &wire.XattrReq{Ino: tr.h, Name: "user.a"}), wire.CodeNoAttr)
	_, err = get("user.a")
	wantCode(t, err, wire.CodeNoAttr)
	_, err = c.getXattr(bg, &wire.XattrReq{Ino: 999, Name: "user.a"})
	wantCode(t, err, wire.CodeNotFound)
	wantCode(t, c.setXattr(bg, &wire.XattrReq{Ino: 999, Name: "user.a"}), wire.CodeNotFound)

	// The has-xattrs flag follows the set of attributes.
	hasFlag := func() bool {
		a, err := c.getAttr(bg, &wire.InoReq{Ino: tr.h})
		if err != nil {
			t.Fatal(err)
		}
		return a.Flags&wire.AttrHasXattrs != 0
	}
	if !hasFlag() {
		t.Fatal("an inode with xattrs lacks AttrHasXattrs")
	}
	for _, name := range []string{strings.Repeat("n", 255), "user.b", "user.max"} {
		wantCode(t, c.removeXattr(bg, &wire.XattrReq{Ino: tr.h, Name: name}), "")
	}
	if hasFlag() {
		t.Fatal("AttrHasXattrs outlived the last xattr")
	}
	wantCode(t, set("user.z", "1", 0), "")
	if !hasFlag() {
		t.Fatal("setxattr did not set AttrHasXattrs")
	}

	// Deleting the inode takes its xattrs along.
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: wire.RootIno, Name: "h"}), "")
	if n := countPrefix(t, c, pXattr); n != 0 {
		t.Fatalf("%d xattrs outlived their inode", n)
	}
}

func TestNames(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	long := strings.Repeat("n", 256)
	cases := []struct {
		name   string
		parent uint64
		want   wire.Code
	}{
		{"", wire.RootIno, wire.CodeInvalid},
		{".", wire.RootIno, wire.CodeInvalid},
		{"..", wire.RootIno, wire.CodeInvalid},
		{"a/b", wire.RootIno, wire.CodeInvalid},
		{"a\x00b", wire.RootIno, wire.CodeInvalid},
		{long, wire.RootIno, wire.CodeNameTooLong},
		{strings.Repeat("n", 255), wire.RootIno, ""},
		{"a", wire.RootIno, wire.CodeExist},
		{"new", tr.h, wire.CodeNotDir},
		{"new", 12345, wire.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("mkdir %.10q", tc.name), func(t *testing.T) {
			_, err := c.create(bg, wire.OpMkdir, &wire.CreateReq{Parent: tc.parent, Name: tc.name, Mode: 0o755})
			wantCode(t, err, tc.want)
		})
	}
	_, err := c.lookup(bg, &wire.LookupReq{Parent: wire.RootIno, Name: "missing"})
	wantCode(t, err, wire.CodeNotFound)
	_, err = c.lookup(bg, &wire.LookupReq{Parent: tr.h, Name: "x"})
	wantCode(t, err, wire.CodeNotDir)
	_, err = c.lookup(bg, &wire.LookupReq{Parent: wire.RootIno, Name: long})
	wantCode(t, err, wire.CodeNameTooLong)

	// create: exclusive, non-exclusive over a file and over a directory.
	_, err = c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "h", Mode: 0o644, Exclusive: true})
	wantCode(t, err, wire.CodeExist)
	a, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "h", Mode: 0o600})
	if err != nil || a.Ino != tr.h || a.Mode != wire.ModeRegular|0o644 {
		t.Fatalf("non-exclusive create of an existing file = %+v, %v", a, err)
	}
	_, err = c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "a", Mode: 0o644})
	wantCode(t, err, wire.CodeIsDir)
	_, err = c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "d", Mode: wire.ModeDir | 0o755})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: wire.RootIno, Name: "o", Mode: 0o644, Open: true})
	wantCode(t, err, wire.CodeInvalid) // open without a session
}

func TestCreateKinds(t *testing.T) {
	c, _ := newTestCore(t)
	root := getattr(t, c, wire.RootIno)

	d := mkdir(t, c, wire.RootIno, "d")
	if d.Mode != wire.ModeDir|0o755 || d.Nlink != 2 || d.Version != 1 {
		t.Fatalf("new dir %+v", d)
	}
	if n := getattr(t, c, wire.RootIno).Nlink; n != root.Nlink+1 {
		t.Fatalf("root nlink %d after mkdir", n)
	}
	f, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: d.Ino, Name: "f", Mode: 0o640, Uid: 7, Gid: 8})
	if err != nil || f.Mode != wire.ModeRegular|0o640 || f.Uid != 7 || f.Gid != 8 || f.Nlink != 1 || f.Version != 1 {
		t.Fatalf("new file %+v, %v", f, err)
	}
	if n := getattr(t, c, d.Ino).Nlink; n != 2 {
		t.Fatalf("dir nlink %d after creating a file in it", n)
	}
	fifo, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: d.Ino, Name: "p", Mode: wire.ModeFIFO | 0o600})
	if err != nil || fifo.Mode != wire.ModeFIFO|0o600 {
		t.Fatalf("mknod fifo %+v, %v", fifo, err)
	}
	dev, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: d.Ino, Name: "c", Mode: wire.ModeChar | 0o600, Rdev: 0x0103})
	if err != nil || dev.Rdev != 0x0103 {
		t.Fatalf("mknod char %+v, %v", dev, err)
	}
	_, err = c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: d.Ino, Name: "p", Mode: wire.ModeFIFO | 0o600})
	wantCode(t, err, wire.CodeExist)
	_, err = c.readChunk(bg, &wire.ReadChunkReq{Ino: fifo.Ino})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.readChunk(bg, &wire.ReadChunkReq{Ino: d.Ino})
	wantCode(t, err, wire.CodeIsDir)

	// symlink through both ops.
	s, err := c.create(bg, wire.OpSymlink, &wire.CreateReq{Parent: d.Ino, Name: "s", Target: "../f"})
	if err != nil || !s.IsSymlink() || s.Size != 4 {
		t.Fatalf("symlink %+v, %v", s, err)
	}
	s2, err := c.create(bg, wire.OpCreate, &wire.CreateReq{Parent: d.Ino, Name: "s2", Mode: wire.ModeSymlink | 0o777, Target: "/abs"})
	if err != nil || !s2.IsSymlink() {
		t.Fatalf("symlink via create %+v, %v", s2, err)
	}
	r, err := c.readlink(bg, &wire.InoReq{Ino: s.Ino})
	if err != nil || r.Target != "../f" {
		t.Fatalf("readlink = %q, %v", r.Target, err)
	}
	_, err = c.readlink(bg, &wire.InoReq{Ino: f.Ino})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.create(bg, wire.OpSymlink, &wire.CreateReq{Parent: d.Ino, Name: "s3"})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.create(bg, wire.OpSymlink, &wire.CreateReq{Parent: d.Ino, Name: "s3", Target: strings.Repeat("t", 4097)})
	wantCode(t, err, wire.CodeNameTooLong)
	wantCode(t, c.unlink(bg, &wire.UnlinkReq{Parent: d.Ino, Name: "s"}), "")
	if has(t, c, keySymlink(s.Ino)) {
		t.Fatal("symlink target outlived its inode")
	}
}

func TestResolve(t *testing.T) {
	c, _ := newTestCore(t)
	tr := newTree(t, c)
	cases := []struct {
		path string
		ino  uint64
		want wire.Code
	}{
		{"/", wire.RootIno, ""},
		{"/a", tr.a, ""},
		{"/a/", tr.a, ""},
		{"/a/sub/x", tr.x, ""},
		{"/a/sub/", tr.sub, ""},
		{"/h", tr.h, ""},
		{"/h/", 0, wire.CodeNotDir},
		{"/h/x", 0, wire.CodeNotDir},
		{"/missing", 0, wire.CodeNotFound},
		{"/a/missing/x", 0, wire.CodeNotFound},
		{"a", 0, wire.CodeInvalid},
		{"", 0, wire.CodeInvalid},
		{"//a", 0, wire.CodeInvalid},
		{"/a//sub", 0, wire.CodeInvalid},
		{"/a/./sub", 0, wire.CodeInvalid},
		{"/a/../b", 0, wire.CodeInvalid},
		{"/a/sub//", 0, wire.CodeInvalid},
	}
	for _, tc := range cases {
		a, err := c.resolve(bg, &wire.ResolveReq{Path: tc.path})
		if tc.want != "" {
			if err == nil || wire.CodeOf(err) != tc.want {
				t.Errorf("resolve %q = %v, want %s", tc.path, err, tc.want)
			}
			continue
		}
		if err != nil || a.Ino != tc.ino {
			t.Errorf("resolve %q = %d, %v; want %d", tc.path, a.Ino, err, tc.ino)
		}
	}
}

func TestReadDirPaging(t *testing.T) {
	c, _ := newTestCore(t)
	d := mkdir(t, c, wire.RootIno, "d")
	want := map[string]uint64{}
	for i := 0; i < 25; i++ {
		name := fmt.Sprintf("e%02d", i)
		if i%5 == 0 {
			want[name] = mkdir(t, c, d.Ino, name).Ino
		} else {
			want[name] = mkfile(t, c, d.Ino, name).Ino
		}
	}
	var got []string
	after := ""
	pages := 0
	for {
		r, err := c.readDir(bg, &wire.ReadDirReq{Ino: d.Ino, After: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range r.Entries {
			if e.Attr.Ino != want[e.Name] {
				t.Fatalf("%s has ino %d, want %d", e.Name, e.Attr.Ino, want[e.Name])
			}
			if e.Attr != getattr(t, c, e.Attr.Ino) {
				t.Fatalf("%s attrs differ from getattr", e.Name)
			}
			got = append(got, e.Name)
		}
		if !r.More {
			break
		}
		after = r.Entries[len(r.Entries)-1].Name
	}
	if pages != 3 || len(got) != 25 || !slices.IsSorted(got) {
		t.Fatalf("%d pages, entries %v", pages, got)
	}
	// After a name that is not in the directory starts at the next one.
	r, err := c.readDir(bg, &wire.ReadDirReq{Ino: d.Ino, After: "e10x", Limit: 2})
	if err != nil || len(r.Entries) != 2 || r.Entries[0].Name != "e11" || !r.More {
		t.Fatalf("readdir after a missing name: %+v, %v", r, err)
	}
	// An exact page is not followed by an empty one.
	r, err = c.readDir(bg, &wire.ReadDirReq{Ino: d.Ino, After: "e19", Limit: 5})
	if err != nil || len(r.Entries) != 5 || r.More {
		t.Fatalf("last exact page: %d entries, more=%v, %v", len(r.Entries), r.More, err)
	}
	r, err = c.readDir(bg, &wire.ReadDirReq{Ino: mkdir(t, c, wire.RootIno, "empty").Ino})
	if err != nil || len(r.Entries) != 0 || r.More || r.Entries == nil {
		t.Fatalf("empty dir: %+v, %v", r, err)
	}
	_, err = c.readDir(bg, &wire.ReadDirReq{Ino: want["e01"]})
	wantCode(t, err, wire.CodeNotDir)
	_, err = c.readDir(bg, &wire.ReadDirReq{Ino: d.Ino, Limit: -1})
	wantCode(t, err, wire.CodeInvalid)
}

func TestSetAttr(t *testing.T) {
	c, clk := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	clk.advance(1e9)
	a, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetMode | wire.SetUid | wire.SetGid, Mode: wire.ModeDir | 0o4711, Uid: 5, Gid: 6})
	if err != nil || a.Mode != wire.ModeRegular|0o4711 || a.Uid != 5 || a.Gid != 6 || a.Ctime != clk.now().UnixNano() {
		t.Fatalf("setattr mode/uid/gid = %+v, %v", a, err)
	}
	a, err = c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetAtime | wire.SetMtime, Atime: 11, Mtime: 22})
	if err != nil || a.Atime != 11 || a.Mtime != 22 {
		t.Fatalf("setattr times = %+v, %v", a, err)
	}
	clk.advance(1e9)
	a, err = c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetAtimeNow | wire.SetMtimeNow})
	now := clk.now().UnixNano()
	if err != nil || a.Atime != now || a.Mtime != now || a.Ctime != now {
		t.Fatalf("setattr now = %+v, %v", a, err)
	}
	a, err = c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetCtime, Ctime: 33})
	if err != nil || a.Ctime != 33 {
		t.Fatalf("setattr ctime = %+v, %v", a, err)
	}
	_, err = c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: 1 << 20})
	wantCode(t, err, wire.CodeInvalid)
	_, err = c.setAttr(bg, &wire.SetAttrReq{Ino: wire.RootIno, Valid: wire.SetSize})
	wantCode(t, err, wire.CodeIsDir)
	_, err = c.setAttr(bg, &wire.SetAttrReq{Ino: 4242, Valid: wire.SetMode})
	wantCode(t, err, wire.CodeNotFound)
	a, err = c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: 1 << 40, Sync: true})
	if err != nil || a.Size != 1<<40 || a.Version != f.Version+1 {
		t.Fatalf("extend = %+v, %v", a, err)
	}
}

func TestTruncateFreesBlocks(t *testing.T) {
	c, _ := newTestCore(t)
	f := mkfile(t, c, wire.RootIno, "f")
	const bs = 1 << 20
	id := lease(t, c, 5)
	// chunk 0: blocks id..id+2 at 0, 1 MiB, 2 MiB; chunk 1: id+3; chunk 2: id+4
	size := uint64(2*wire.ChunkSize + bs)
	commit(t, c, f.Ino, size,
		slice(0, 0, bs, id), slice(0, bs, bs, id+1), slice(0, 2*bs, bs, id+2),
		slice(1, 0, bs, id+3), slice(2, 0, bs, id+4))
	for i := uint64(0); i < 5; i++ {
		if !has(t, c, keyBlock(id+i)) {
			t.Fatalf("block %d not in the reverse index", id+i)
		}
	}
	// Cut inside the second block of chunk 0.
	a, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize, Size: bs + bs/2})
	if err != nil || a.Size != bs+bs/2 {
		t.Fatalf("truncate = %+v, %v", a, err)
	}
	if q := queuedIDs(t, c); !slices.Equal(q, []uint64{id + 2, id + 3, id + 4}) {
		t.Fatalf("queue %v", q)
	}
	for _, b := range []uint64{id + 2, id + 3, id + 4} {
		if has(t, c, keyBlock(b)) {
			t.Fatalf("freed block %d still in the reverse index", b)
		}
	}
	rc, err := c.readChunk(bg, &wire.ReadChunkReq{Ino: f.Ino})
	if err != nil || len(rc.Slices) != 2 || rc.Slices[1].Len != bs/2 || rc.Version != a.Version {
		t.Fatalf("chunk after truncate: %+v, %v", rc, err)
	}
	if n := countPrefix(t, c, pChunk); n != 1 {
		t.Fatalf("%d chunks left", n)
	}
	if c.ctr.queued != 3 {
		t.Fatalf("queue counter %d", c.ctr.queued)
	}
	// Down to zero frees the rest.
	if _, err := c.setAttr(bg, &wire.SetAttrReq{Ino: f.Ino, Valid: wire.SetSize}); err != nil {
		t.Fatal(err)
	}
	if q := queuedIDs(t, c); len(q) != 5 || countPrefix(t, c, pChunk) != 0 || countPrefix(t, c, pBlock) != 0 {
		t.Fatalf("after truncate to 0: queue %v", q)
	}
}
