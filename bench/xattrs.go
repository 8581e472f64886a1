package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lsWithoutXattrs is `ls -l` of n files just created through a second
// separate mount of sep's cluster, started with --no-xattrs: the kernel
// then stops sending the two GETXATTRs ls -l makes per file, which are
// most of a listing's time through the default mount. Like the "just
// created" row of the default mounts, the listing runs after the
// creates' attributes have expired.
func (r *runner) lsWithoutXattrs(ctx context.Context, sep *sepMount, mnt string, n int, null *os.File) value {
	m := &sepMount{c: sep.c, mnt: mnt, args: []string{"--no-xattrs"}}
	if err := m.start(ctx); err != nil {
		return missing("reelfs mount --no-xattrs: %v", err)
	}
	defer func() {
		if err := m.stop(); err != nil {
			r.log.Warn("unmount", "mnt", mnt, "err", err)
		}
	}()
	dir := filepath.Join(mnt, "cnx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return missing("%v", err)
	}
	limit := 2 * time.Minute
	done, d, err := createMany(ctx, n, 1, limit, func(_ context.Context, i int) error {
		return createEmpty(filepath.Join(dir, fmt.Sprintf("f%06d", i)))
	})
	if v := createValue(n, done, d, err, limit); !v.ok() {
		return v
	}
	select { // past the attribute timeout (1 s) of the creates' answers
	case <-ctx.Done():
		return missing("%v", ctx.Err())
	case <-time.After(1500 * time.Millisecond):
	}
	res, err := r.run(ctx, 2*time.Minute, null, "ls", "-l", dir)
	if err != nil {
		return missing("%v", err)
	}
	return got(ms(res.elapsed), "ms")
}
