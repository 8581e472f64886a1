package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/reelfs/reelfs/internal/wire"
)

// pages holds the HTML templates. html/template escapes every name and
// URL in its context (text, attribute, URL), so a file called
// `"><script>` shows as text.
type pages struct {
	listing *template.Template
	player  *template.Template
}

const listingHTML = `<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of {{.Path}}</title>
<style>body{font-family:sans-serif;margin:1em 2em}td,th{padding:2px 12px 2px 0;text-align:left}td.n{text-align:right}</style>
</head><body>
<h1>Index of {{.Path}}</h1>
<table>
<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th><th></th></tr></thead>
<tbody>
{{- if .Parent}}
<tr><td><a href="{{.Parent}}">../</a></td><td></td><td></td><td></td></tr>
{{- end}}
{{- range .Entries}}
<tr><td><a href="{{.Href}}">{{.Name}}{{if .Dir}}/{{end}}</a></td><td class="n"{{if not .Dir}} title="{{.Size}} bytes"{{end}}>{{if not .Dir}}{{.Human}}{{end}}</td><td>{{.Mtime}}</td><td>{{if .Player}}<a href="{{.Player}}">play</a>{{end}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Next}}
<p><a href="{{.Next}}">next page</a></p>
{{- end}}
</body></html>
`

const playerHTML = `<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}}</title>
<style>body{margin:0;background:#111;color:#ddd;font-family:sans-serif}video,audio{display:block;width:100%;max-height:90vh}p{margin:.5em 1em}a{color:#9cf}</style>
</head><body>
{{- if .Audio}}
<audio id="player" src="{{.Src}}" controls autoplay preload="metadata"></audio>
{{- else}}
<video id="player" src="{{.Src}}" controls autoplay muted playsinline preload="metadata"></video>
{{- end}}
<p>{{.Name}} ({{.Type}}) &middot; <a href="{{.Download}}">download</a></p>
</body></html>
`

func newPages() (*pages, error) {
	l, err := template.New("listing").Parse(listingHTML)
	if err != nil {
		return nil, err
	}
	p, err := template.New("player").Parse(playerHTML)
	if err != nil {
		return nil, err
	}
	return &pages{listing: l, player: p}, nil
}

// listEntry is one row of an HTML listing.
type listEntry struct {
	Name, Href, Player, Human, Mtime string
	Size                             uint64
	Dir                              bool
}

// jsonEntry is one entry of a JSON listing.
type jsonEntry struct {
	Name  string `json:"name"`
	Size  uint64 `json:"size"`
	Mode  uint32 `json:"mode"`
	Mtime string `json:"mtime"` // RFC 3339, UTC
	Dir   bool   `json:"dir"`
}

// jsonListing is the ?format=json answer for a directory. With More, the
// next page is ?after=NEXT.
type jsonListing struct {
	Path    string      `json:"path"`
	Entries []jsonEntry `json:"entries"`
	More    bool        `json:"more"`
	Next    string      `json:"next,omitempty"`
}

// readDirPage reads up to limit entries of directory ino after name after,
// page by page.
func (s *Server) readDirPage(ctx context.Context, ino uint64, after string, limit int) ([]wire.DirEntry, bool, error) {
	var out []wire.DirEntry
	for len(out) < limit {
		rep, err := s.fs.ReadDir(ctx, ino, after, limit-len(out))
		if err != nil {
			return nil, false, err
		}
		out = append(out, rep.Entries...)
		if !rep.More || len(rep.Entries) == 0 {
			return out, false, nil
		}
		after = rep.Entries[len(rep.Entries)-1].Name
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, true, nil
}

// serveListing answers a directory read as HTML, or JSON with
// ?format=json, one page of ListPage entries in name order at a time.
func (s *Server) serveListing(x *exchange, p string, attr wire.Attr) {
	args := x.ctx.QueryArgs()
	after := string(args.Peek("after"))
	entries, more, err := s.readDirPage(x.rctx, attr.Ino, after, s.cfg.ListPage)
	if err != nil {
		s.failFS(x, "readdir", err)
		return
	}
	dirURL := escapePath(p)
	if p != "/" {
		dirURL += "/"
	}
	next := ""
	if more && len(entries) > 0 {
		next = entries[len(entries)-1].Name
	}
	x.ctx.Response.Header.Set("Cache-Control", "no-cache")

	if string(args.Peek("format")) == "json" {
		out := jsonListing{Path: dirURLPath(p), Entries: make([]jsonEntry, 0, len(entries)), More: more, Next: next}
		for _, e := range entries {
			out.Entries = append(out.Entries, jsonEntry{
				Name: e.Name, Size: e.Attr.Size, Mode: e.Attr.Mode,
				Mtime: time.Unix(0, e.Attr.Mtime).UTC().Format(time.RFC3339), Dir: e.Attr.IsDir(),
			})
		}
		body, err := json.Marshal(out)
		if err != nil {
			s.fail(x, fasthttp.StatusInternalServerError, "encode listing")
			return
		}
		x.ctx.SetContentType("application/json; charset=utf-8")
		x.ctx.SetBody(body)
		return
	}

	data := struct {
		Path, Parent, Next string
		Entries            []listEntry
	}{Path: dirURLPath(p)}
	if p != "/" {
		parent, _ := splitPath(p)
		data.Parent = escapePath(parent)
		if parent != "/" {
			data.Parent += "/"
		}
		data.Parent += s.linkQuery(x, parent)
	}
	if next != "" {
		q := s.linkQuery(x, p)
		if q == "" {
			q = "?"
		} else {
			q += "&"
		}
		data.Next = dirURL + q + "after=" + url.QueryEscape(next)
	}
	for _, e := range entries {
		child := joinPath(p, e.Name)
		le := listEntry{
			Name: e.Name, Size: e.Attr.Size, Dir: e.Attr.IsDir(),
			Human: humanSize(e.Attr.Size),
			Mtime: time.Unix(0, e.Attr.Mtime).UTC().Format("2006-01-02 15:04:05"),
		}
		q := s.linkQuery(x, child)
		le.Href = escapePath(child)
		if le.Dir {
			le.Href += "/"
		}
		le.Href += q
		if !le.Dir && e.Attr.IsRegular() && playable(contentType(e.Name)) {
			le.Player = playerPrefix + escapePath(child) + q
		}
		data.Entries = append(data.Entries, le)
	}
	var buf bytes.Buffer
	if err := s.pages.listing.Execute(&buf, data); err != nil {
		s.fail(x, fasthttp.StatusInternalServerError, "render listing")
		return
	}
	x.ctx.SetContentType("text/html; charset=utf-8")
	x.ctx.SetBody(buf.Bytes())
}

// servePlayer answers /player/PATH: a page with an HTML5 player whose
// source is the file's URL, carrying the request's signature (which, since
// it signs PATH, is valid for the file too).
func (s *Server) servePlayer(x *exchange, p string) {
	if !s.checkRead(x, p) {
		return
	}
	attr, err := s.fs.Resolve(x.rctx, p)
	if err != nil {
		s.failFS(x, "resolve", err)
		return
	}
	if !attr.IsRegular() {
		s.fail(x, fasthttp.StatusNotFound, "not a playable file")
		return
	}
	_, name := splitPath(p)
	ctype := contentType(name)
	q := carriedQuery(x.ctx)
	src := escapePath(p) + q
	dl := src + "?download"
	if q != "" {
		dl = src + "&download"
	}
	data := struct {
		Name, Type, Src, Download string
		Audio                     bool
	}{Name: name, Type: ctype, Src: src, Download: dl, Audio: strings.HasPrefix(ctype, "audio/")}
	var buf bytes.Buffer
	if err := s.pages.player.Execute(&buf, data); err != nil {
		s.fail(x, fasthttp.StatusInternalServerError, "render player")
		return
	}
	x.ctx.Response.Header.Set("Cache-Control", "no-cache")
	x.ctx.SetContentType("text/html; charset=utf-8")
	x.ctx.SetBody(buf.Bytes())
}

// dirURLPath is a directory's path as a listing shows it, with a slash.
func dirURLPath(p string) string {
	if p == "/" {
		return "/"
	}
	return p + "/"
}

// humanSize formats a byte count with binary units.
func humanSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
