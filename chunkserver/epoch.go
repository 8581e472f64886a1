package chunkserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// epochFence is the newest metaserver epoch this chunkserver has heard of
// (from heartbeat answers and from deletes), kept in Dir/epoch so a
// restart does not forget it. A block delete sent under an older epoch
// comes from a deposed leader and is refused: such a leader may be acting
// on changes the cluster never acknowledged.
type epochFence struct {
	path string

	mu    sync.Mutex
	epoch uint64
}

func loadEpochFence(dir string) (*epochFence, error) {
	f := &epochFence{path: filepath.Join(dir, "epoch")}
	b, err := os.ReadFile(f.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("chunkserver: epoch: %w", err)
	}
	if f.epoch, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
		return nil, fmt.Errorf("chunkserver: %s: %w", f.path, err)
	}
	return f, nil
}

// admit reports whether an action under epoch e may go ahead (e is not
// older than the newest seen; 0 means the sender runs without failover),
// raising the newest seen to e.
func (f *epochFence) admit(e uint64) (bool, error) {
	if e == 0 {
		return true, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e < f.epoch {
		return false, nil
	}
	if e == f.epoch {
		return true, nil
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(e, 10)+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("chunkserver: save epoch: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return false, fmt.Errorf("chunkserver: save epoch: %w", err)
	}
	f.epoch = e
	return true, nil
}

// current is the newest epoch seen.
func (f *epochFence) current() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}
