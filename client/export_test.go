package client

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/metaserver"
)

// StartTestCluster starts a metaserver and a group of two chunkservers on
// loopback ports in a temporary directory, for the examples (which have
// no testing.T); it returns the metaserver's address and a function that
// stops everything and removes the directory.
func StartTestCluster() (meta string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "reelfs-example-")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	stop = func() {
		cancel()
		for _, d := range done {
			<-d
		}
		os.RemoveAll(dir)
	}
	run := func(fn func(context.Context) error) {
		d := make(chan error, 1)
		go func() { d <- fn(ctx) }()
		done = append(done, d)
	}
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir, mcfg.Listen = dir+"/meta", "127.0.0.1:0"
	ms, err := metaserver.New(mcfg)
	if err != nil {
		stop()
		return "", nil, err
	}
	run(ms.Run)
	for i := 1; i <= 2; i++ {
		ccfg := chunkserver.DefaultConfig()
		ccfg.Dir, ccfg.Listen, ccfg.Meta, ccfg.Group = fmt.Sprintf("%s/chunk%d", dir, i), "127.0.0.1:0", ms.Addr(), 1
		ccfg.ID, ccfg.MinCopies, ccfg.HeartbeatEvery = fmt.Sprintf("cs%d", i), 2, 50*time.Millisecond
		cs, err := chunkserver.New(ccfg)
		if err != nil {
			stop()
			return "", nil, err
		}
		run(cs.Run)
	}
	// ready once both members are in the group's in-sync set
	cfg := DefaultConfig()
	cfg.Meta = ms.Addr()
	c, err := New(cfg)
	if err != nil {
		stop()
		return "", nil, err
	}
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		groups, err := c.Groups(ctx)
		if err == nil && len(groups) == 1 && len(groups[0].ISR) == 2 {
			return ms.Addr(), stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("test cluster not ready in 30 s (%v)", err)
		}
	}
}
