package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/reelfs/reelfs/chunkserver"
	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/consul"
	"github.com/reelfs/reelfs/fusefs"
	"github.com/reelfs/reelfs/httpd"
	"github.com/reelfs/reelfs/live"
	"github.com/reelfs/reelfs/metaserver"
)

// logFlags adds --log-level and returns a constructor for the logger.
func logFlags(fs *pflag.FlagSet, e *env) func() *slog.Logger {
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() *slog.Logger {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			l = slog.LevelInfo
		}
		opts := &slog.HandlerOptions{Level: l}
		if *format == "json" {
			return slog.New(slog.NewJSONHandler(e.stderr, opts))
		}
		return slog.New(slog.NewTextHandler(e.stderr, opts))
	}
}

// consulFlag adds --consul, the local Consul agent's HTTP address; its
// default is $CONSUL_HTTP_ADDR, Consul's own convention. Empty runs without
// Consul (the embedded mode).
func consulFlag(fs *pflag.FlagSet, e *env) *string {
	return fs.String("consul", e.getenv("CONSUL_HTTP_ADDR"),
		"Consul agent HTTP address (host:port or URL): register this daemon with a health check and deregister on exit (env CONSUL_HTTP_ADDR; empty: no Consul)")
}

// newConsul returns a client of the agent at addr, or nil for an empty
// addr.
func newConsul(addr string, log *slog.Logger) (*consul.Client, error) {
	if addr == "" {
		return nil, nil
	}
	cfg := consul.DefaultConfig()
	cfg.Address, cfg.Logger = addr, log
	return consul.New(cfg)
}

func secretFlag(fs *pflag.FlagSet, e *env) *string {
	return fs.String("secret", e.getenv("REELFS_SECRET"), "cluster secret: internal calls and writes need it, reads need signed URLs (env REELFS_SECRET)")
}

func metaCommand() command {
	return command{
		name: "meta", usage: "", summary: "run a metaserver (namespace, tracker, GC)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			cfg := metaserver.DefaultConfig()
			fs.StringVar(&cfg.Dir, "dir", "./data/meta", "directory of the namespace database")
			fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "listen address")
			fs.DurationVar(&cfg.UploadGrace, "upload-grace", cfg.UploadGrace, "age after which uploaded but uncommitted blocks are removed")
			fs.DurationVar(&cfg.GCInterval, "gc-interval", cfg.GCInterval, "how often queued block deletions are sent")
			fs.DurationVar(&cfg.UploadGCInterval, "upload-gc-interval", cfg.UploadGCInterval, "how often chunkservers are scanned for uncommitted blocks")
			fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", cfg.HeartbeatTimeout, "a chunkserver silent this long is not chosen and leaves its group's in-sync set")
			fs.DurationVar(&cfg.ReplicaLagTime, "replica-lag-time", cfg.ReplicaLagTime, "a chunkserver not caught up with an in-sync peer's binlog for this long leaves the in-sync set")
			fs.Uint64Var(&cfg.ReplicaLagBytes, "replica-lag-bytes", cfg.ReplicaLagBytes, "a chunkserver this many bytes behind an in-sync peer leaves the in-sync set (0: no bound)")
			fs.DurationVar(&cfg.SessionTTL, "session-ttl", cfg.SessionTTL, "a client (mount, httpd) silent this long loses its session: the files it held open and its locks are released")
			fs.BoolVar(&cfg.HA, "ha", false, "run as one of several metaservers with failover (needs --consul): the holder of the Consul lock leads, the others follow its op log")
			fs.StringVar(&cfg.HAPrefix, "ha-prefix", cfg.HAPrefix, "Consul KV prefix of the leader lock and the failover state (one per cluster)")
			fs.DurationVar(&cfg.HALag, "ha-lag", cfg.HALag, "a follower metaserver not caught up for this long leaves the in-sync set (answers stop waiting for it)")
			consulAddr := consulFlag(fs, e)
			secret := secretFlag(fs, e)
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				cfg.Secret, cfg.Logger = *secret, logger()
				var err error
				if cfg.Consul, err = newConsul(*consulAddr, cfg.Logger); err != nil {
					return err
				}
				s, err := metaserver.New(cfg)
				if err != nil {
					return err
				}
				return s.Run(ctx) // Run logs the address it serves on

			}
		},
	}
}

func chunkCommand() command {
	return command{
		name: "chunk", usage: "", summary: "run a chunkserver (block store of one group member)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			cfg := chunkserver.DefaultConfig()
			fs.StringVar(&cfg.Dir, "dir", "./data/chunk", "directory of the block store")
			fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "listen address")
			fs.StringVar(&cfg.Advertise, "advertise", "", "address other peers use (default: the listen address)")
			group := fs.Uint("group", uint(cfg.Group), "group id")
			fs.StringVar(&cfg.Meta, "meta", envOr(e, "REELFS_META", defaultMeta), "metaserver address to heartbeat to (env REELFS_META)")
			fs.Uint64Var(&cfg.Reserve, "reserve", cfg.Reserve, "bytes of disk kept free; PUTs past it answer NOSPACE")
			fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "most connections served at once (more get 503); bounds the memory of PUT bodies in flight to this many blocks")
			replicationFlags(fs, &cfg)
			consulAddr := consulFlag(fs, e)
			secret := secretFlag(fs, e)
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				cfg.Group, cfg.Secret, cfg.Logger = uint32(*group), *secret, logger()
				var err error
				if cfg.Consul, err = newConsul(*consulAddr, cfg.Logger); err != nil {
					return err
				}
				s, err := chunkserver.New(cfg)
				if err != nil {
					return err
				}
				return s.Run(ctx) // Run logs the address it serves on
			}
		},
	}
}

// replicationFlags declares the chunkserver's replication knobs.
func replicationFlags(fs *pflag.FlagSet, cfg *chunkserver.Config) {
	fs.IntVar(&cfg.MinCopies, "min-copies", cfg.MinCopies, "a PUT is acknowledged only when every in-sync member holds the block, and never with fewer than this many copies; a group with fewer in-sync members takes no new blocks")
	fs.DurationVar(&cfg.AckTimeout, "ack-timeout", cfg.AckTimeout, "how long a PUT waits for the in-sync set before it fails (the client retries)")
	fs.DurationVar(&cfg.ShipWait, "ship-wait", cfg.ShipWait, "long-poll wait of a fetch of a peer's binlog")
	fs.IntVar(&cfg.ShipBatch, "ship-batch", cfg.ShipBatch, "binlog entries per fetch")
	fs.IntVar(&cfg.ShipParallel, "ship-parallel", cfg.ShipParallel, "blocks copied at once from one peer")
	fs.Int64Var(&cfg.ResyncRate, "resync-rate", cfg.ResyncRate, "bytes/s bound of an inventory resync (new or replaced member; 0: none)")
	fs.Int64Var(&cfg.ScrubRate, "scrub-rate", cfg.ScrubRate, "bytes/s the scrubber re-verifies blocks at (0: off; damage found by reads is still repaired)")
	fs.DurationVar(&cfg.ScrubPause, "scrub-pause", cfg.ScrubPause, "pause between two full scrub passes")
}

func envOr(e *env, key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

func httpdCommand() command {
	return command{
		name: "httpd", usage: "", summary: "serve the namespace over HTTP for players (ranges, listings, player page)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			cfg := httpd.DefaultConfig()
			o := defineClientFlags(fs, e)
			fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "listen address")
			fs.BoolVar(&cfg.AccessLog, "access-log", true, "log every request")
			fs.BoolVar(&cfg.AllowAnonymousWrites, "anonymous-writes", false, "allow PUT/DELETE without a secret (only for a private dev server)")
			consulAddr := consulFlag(fs, e)
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				cfg.Secret, cfg.Logger = o.secret, logger()
				var err error
				if cfg.Consul, err = newConsul(*consulAddr, cfg.Logger); err != nil {
					return err
				}
				o.retry = daemonRetry
				c, err := o.connect(e)
				if err != nil {
					return err
				}
				defer c.Close()
				s, err := httpd.New(cfg, httpd.FromClient(c))
				if err != nil {
					return err
				}
				cfg.Logger.Info("httpd listening", "url", "http://"+s.Addr()+"/")
				return s.Run(ctx)
			}
		},
	}
}

// mountFlags are the options of a FUSE mount shared by mount and server.
func mountFlags(fs *pflag.FlagSet) *fusefs.Options {
	opt := fusefs.DefaultOptions()
	fs.DurationVar(&opt.EntryTimeout, "entry-timeout", opt.EntryTimeout, "kernel cache time of names")
	fs.DurationVar(&opt.AttrTimeout, "attr-timeout", opt.AttrTimeout, "kernel cache time of attributes")
	fs.BoolVar(&opt.NoXattrs, "no-xattrs", false, "turn extended attributes off in the mount (EOPNOTSUPP; ls -l of large directories is faster)")
	fs.BoolVar(&opt.Debug, "fuse-debug", false, "log every FUSE request")
	return &opt
}

func mountCommand() command {
	return command{
		name: "mount", usage: "MOUNTPOINT", summary: "mount the cluster as a POSIX filesystem (FUSE) until SIGINT/SIGTERM",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			o := defineClientFlags(fs, e)
			opt := mountFlags(fs)
			o.commitEvery = commitFlag(fs)
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want MOUNTPOINT")
				}
				opt.Logger = logger()
				o.retry = daemonRetry
				c, err := o.connect(e)
				if err != nil {
					return err
				}
				defer c.Close()
				m, err := fusefs.Mount(ctx, c, args[0], *opt)
				if err != nil {
					return err
				}
				opt.Logger.Info("mounted", "mountpoint", args[0], "meta", o.meta)
				return waitMount(ctx, m)
			}
		},
	}
}

// waitMount blocks until ctx is cancelled (then unmounts) or the kernel
// unmounts the filesystem.
func waitMount(ctx context.Context, m *fusefs.FS) error {
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		err := m.Unmount()
		<-done
		return err
	}
}

func umountCommand() command {
	return command{
		name: "umount", usage: "MOUNTPOINT", summary: "unmount, also a mount point left behind by a killed client (lazy unmount)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want MOUNTPOINT")
				}
				return fusefs.LazyUnmount(args[0])
			}
		},
	}
}

func signCommand() command {
	return command{
		name: "sign", usage: "PATH", summary: "print a signed URL for PATH (reads need one when a secret is set)",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			secret := secretFlag(fs, e)
			ttl := fs.Duration("ttl", time.Hour, "how long the URL stays valid")
			base := fs.String("base", "http://"+defaultHTTP, "base URL of the httpd")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usageError("want PATH")
				}
				if *secret == "" {
					return errors.New("no secret: set --secret or REELFS_SECRET")
				}
				fmt.Fprintln(e.stdout, httpd.SignURL(strings.TrimRight(*base, "/"), *secret, remotePath(args[0]), *ttl, time.Now()))
				return nil
			}
		},
	}
}

func serverCommand() command {
	return command{
		name: "server", usage: "", summary: "run everything in one process: metaserver, a group of 2 chunkservers, httpd and (with --mount) a FUSE mount",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			dir := fs.String("dir", "./data", "directory for all data (meta/, chunk1/, chunk2/)")
			metaAddr := fs.String("meta-listen", defaultMeta, "metaserver listen address")
			nChunks := fs.Int("chunkservers", 2, "chunkservers in the group (each keeps a copy of every block)")
			chunkAddrs := fs.String("chunk-listen", "", "the chunkservers' listen addresses, comma-separated (default: 127.0.0.1:9410, :9411, ... one per chunkserver)")
			minCopies := fs.Int("min-copies", 0, "the write quorum's floor (default: 2, or 1 with --chunkservers 1)")
			scrubRate := fs.Int64("scrub-rate", chunkserver.DefaultConfig().ScrubRate, "bytes/s each chunkserver's scrubber re-verifies blocks at (0: off)")
			httpAddr := fs.String("http-listen", defaultHTTP, "httpd listen address (empty: no httpd)")
			mountDir := fs.String("mount", "", "mount the filesystem here (empty: no mount)")
			reserve := fs.Uint64("reserve", chunkserver.DefaultConfig().Reserve, "bytes of disk each chunkserver keeps free")
			uploadGrace := fs.Duration("upload-grace", metaserver.DefaultConfig().UploadGrace, "age after which uncommitted blocks are removed")
			anonWrites := fs.Bool("anonymous-writes", false, "allow HTTP PUT/DELETE without a secret (private dev server only)")
			accessLog := fs.Bool("access-log", true, "log every HTTP request of the httpd")
			consulAddr := consulFlag(fs, e)
			secret := secretFlag(fs, e)
			opt := mountFlags(fs)
			commitEvery := commitFlag(fs)
			liveOpt := defineLiveFlags(fs, e, "live-")
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("server takes no arguments")
				}
				log := logger()
				cc, err := newConsul(*consulAddr, log)
				if err != nil {
					return err
				}
				if *nChunks < 1 || *nChunks > 16 {
					return usageError("--chunkservers wants 1 to 16")
				}
				var addrs []string
				if *chunkAddrs == "" {
					for i := 0; i < *nChunks; i++ {
						addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", 9410+i))
					}
				} else if addrs = strings.Split(*chunkAddrs, ","); len(addrs) != *nChunks {
					return usageError(fmt.Sprintf("--chunk-listen has %d addresses for %d chunkservers", len(addrs), *nChunks))
				}
				copies := *minCopies
				if copies == 0 {
					copies = min(2, *nChunks)
				}
				if copies > *nChunks {
					return usageError(fmt.Sprintf("--min-copies %d needs at least that many --chunkservers (have %d)", copies, *nChunks))
				}
				return runServer(ctx, serverSpec{
					minCopies: copies, scrubRate: *scrubRate,
					dir: *dir, meta: *metaAddr, chunks: addrs, http: *httpAddr, mount: *mountDir,
					reserve: *reserve, uploadGrace: *uploadGrace, secret: *secret, anonWrites: *anonWrites, accessLog: *accessLog,
					mountOpt: *opt, commitEvery: *commitEvery, log: log, stdout: e, live: liveOpt, consul: cc,
				})
			}
		},
	}
}

type serverSpec struct {
	dir, meta, http, mount, secret string
	chunks                         []string
	minCopies                      int
	scrubRate                      int64
	reserve                        uint64
	uploadGrace                    time.Duration
	anonWrites, accessLog          bool
	mountOpt                       fusefs.Options
	commitEvery                    time.Duration
	log                            *slog.Logger
	stdout                         *env
	live                           *liveOpts      // live.listen empty: no live server
	consul                         *consul.Client // nil: no Consul
}

// runServer starts the all-in-one cluster and stops it in dependency
// order: mount and httpd first (they flush through the client), then the
// chunkservers and the metaserver.
func runServer(ctx context.Context, sp serverSpec) error {
	mcfg := metaserver.DefaultConfig()
	mcfg.Dir, mcfg.Listen, mcfg.Secret, mcfg.UploadGrace = filepath.Join(sp.dir, "meta"), sp.meta, sp.secret, sp.uploadGrace
	mcfg.Logger, mcfg.Consul = sp.log.With("daemon", "meta"), sp.consul
	meta, err := metaserver.New(mcfg)
	if err != nil {
		return err
	}
	var chunks []*chunkserver.Server
	for i, addr := range sp.chunks {
		ccfg := chunkserver.DefaultConfig()
		ccfg.Dir, ccfg.Listen, ccfg.Meta, ccfg.Group = filepath.Join(sp.dir, fmt.Sprintf("chunk%d", i+1)), addr, meta.Addr(), 1
		ccfg.Secret, ccfg.Reserve = sp.secret, sp.reserve
		ccfg.MinCopies, ccfg.ScrubRate = sp.minCopies, sp.scrubRate
		ccfg.Logger, ccfg.Consul = sp.log.With("daemon", "chunk", "n", i+1), sp.consul
		cs, err := chunkserver.New(ccfg)
		if err != nil {
			meta.Close()
			for _, c := range chunks {
				c.Close()
			}
			return err
		}
		chunks = append(chunks, cs)
	}

	backCtx, stopBack := context.WithCancel(context.Background())
	defer stopBack()
	back, backCtx := errgroup.WithContext(backCtx)
	back.Go(func() error { return meta.Run(backCtx) })
	for _, cs := range chunks {
		back.Go(func() error { return cs.Run(backCtx) })
	}
	frontCtx, stopFront := context.WithCancel(ctx)
	defer stopFront()
	front, frontCtx := errgroup.WithContext(frontCtx)
	// abort stops whatever has started, front before back, and returns err.
	abort := func(err error) error {
		stopFront()
		front.Wait()
		stopBack()
		back.Wait()
		return err
	}

	ccfg := client.DefaultConfig()
	ccfg.Meta, ccfg.Secret, ccfg.Logger = meta.Addr(), sp.secret, sp.log.With("daemon", "client")
	ccfg.CommitEvery = sp.commitEvery
	// The mount and httpd read blocks of the chunkservers in this process
	// directly; uploads and every other client still use HTTP.
	ccfg.Local = make(map[string]client.LocalBlocks, len(chunks))
	for _, cs := range chunks {
		ccfg.Local[cs.Addr()] = cs
	}
	c, err := client.New(ccfg)
	if err != nil {
		return abort(err)
	}
	defer c.Close()
	if err := waitHealthy(ctx, c, len(chunks), sp.minCopies, sp.log); err != nil {
		return abort(err)
	}

	var url string
	if sp.http != "" {
		hcfg := httpd.DefaultConfig()
		hcfg.Listen, hcfg.Secret, hcfg.AllowAnonymousWrites = sp.http, sp.secret, sp.anonWrites
		hcfg.Logger, hcfg.AccessLog, hcfg.Consul = sp.log.With("daemon", "httpd"), sp.accessLog, sp.consul
		h, err := httpd.New(hcfg, httpd.FromClient(c))
		if err != nil {
			return abort(err)
		}
		url = "http://" + h.Addr() + "/"
		front.Go(func() error { return h.Run(frontCtx) })
	}
	var liveURL string
	if sp.live != nil && sp.live.listen != "" {
		lcfg := sp.live.config(sp.secret, strings.TrimSuffix(url, "/"), sp.log.With("daemon", "live"))
		lcfg.Consul = sp.consul
		ls, err := live.New(lcfg, live.FromClient(c))
		if err != nil {
			return abort(err)
		}
		liveURL = liveBanner(ls)
		front.Go(func() error { return ls.Run(frontCtx) })
	}
	if sp.mount != "" {
		if err := os.MkdirAll(sp.mount, 0o755); err != nil {
			return abort(err)
		}
		opt := sp.mountOpt
		opt.Logger = sp.log.With("daemon", "mount")
		m, err := fusefs.Mount(frontCtx, c, sp.mount, opt)
		if err != nil {
			return abort(fmt.Errorf("mount %s: %w", sp.mount, err))
		}
		front.Go(func() error { return waitMount(frontCtx, m) })
	}

	w := sp.stdout.stdout
	fmt.Fprintf(w, "reelfs is running (data in %s)\n", sp.dir)
	fmt.Fprintf(w, "  metaserver   %s\n", meta.Addr())
	for i, cs := range chunks {
		fmt.Fprintf(w, "  chunkserver  %s (group 1, member %d)\n", cs.Addr(), i+1)
	}
	if url != "" {
		fmt.Fprintf(w, "  http         %s   (try: curl %sclip.mp4, or open %splayer/clip.mp4)\n", url, url, url)
	}
	if liveURL != "" {
		fmt.Fprintf(w, "  live         %s\n", liveURL)
	}
	if sp.mount != "" {
		fmt.Fprintf(w, "  mount        %s   (try: cp movie.mp4 %s/clip.mp4)\n", sp.mount, strings.TrimRight(sp.mount, "/"))
	}
	fmt.Fprintf(w, "  cli          reelfs put movie.mp4 /clip.mp4; reelfs ls -l /; reelfs status\n")
	fmt.Fprintf(w, "Press Ctrl-C to stop.\n")

	<-frontCtx.Done()
	ferr := front.Wait()
	stopBack()
	berr := back.Wait()
	if ferr != nil && !errors.Is(ferr, context.Canceled) {
		return ferr
	}
	if berr != nil && !errors.Is(berr, context.Canceled) {
		return berr
	}
	return nil
}

// waitHealthy waits until n chunkservers have heartbeated, then up to
// writableWait for a group whose in-sync set has inSync members, so the
// first write finds a placement. A group that cannot take writes yet
// (members resyncing or full) is not an error: the server starts and
// says so, and writes fail with NOSPACE naming the cause until it can.
func waitHealthy(ctx context.Context, c *client.Client, n, inSync int, log *slog.Logger) error {
	const writableWait = 15 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second+writableWait)
	defer cancel()
	for {
		groups, err := c.Groups(ctx)
		healthy, full, isr := 0, 0, 0
		if err == nil {
			for _, g := range groups {
				for _, m := range g.Members {
					if m.Healthy {
						healthy++
					}
					if m.Healthy && m.Full {
						full++
					}
				}
				isr = max(isr, len(g.ISR))
			}
		}
		switch {
		case healthy >= n && isr >= inSync:
			return nil
		case healthy >= n && (time.Since(start) > writableWait || full == healthy):
			log.Warn("no group has enough in-sync members yet; writes fail until one has (see reelfs status)",
				"in_sync", isr, "min_copies", inSync)
			return nil
		case healthy < n && time.Since(start) > 30*time.Second:
			return fmt.Errorf("chunkservers did not report healthy (%d of %d)", healthy, n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chunkservers did not report healthy (%d of %d): %w", healthy, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
