package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: progress is shown only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress is an io.Writer that counts bytes into a progress bar, or does
// nothing when progress is off.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, enabled bool, size int64, desc string) *progress {
	if !enabled {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*1e6),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
		progressbar.OptionFullWidth(),
	)}
}

func (p *progress) Write(b []byte) (int, error) {
	if p.bar != nil {
		p.bar.Add(len(b))
	}
	return len(b), nil
}

// add counts n bytes that were not written through p (a file skipped
// as identical).
func (p *progress) add(n int64) {
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
