package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/reelfs/reelfs/client"
	"github.com/reelfs/reelfs/live"
)

const (
	defaultLive      = "127.0.0.1:9490" // HTTP signalling
	defaultLiveMedia = "127.0.0.1:9490" // UDP media, same port number
)

// liveOpts are the flags `reelfs live` and `reelfs server` share.
type liveOpts struct {
	listen, media, publicIPs, recordDir, token string
	rate                                       float64
	burst                                      int
}

func defineLiveFlags(fs *pflag.FlagSet, e *env, prefix string) *liveOpts {
	o := &liveOpts{}
	what := "HTTP address of WHIP/WHEP signalling and the live pages"
	if prefix != "" {
		what += " (empty: no live server)"
	}
	fs.StringVar(&o.listen, prefix+"listen", defaultLive, what)
	fs.StringVar(&o.media, prefix+"media", defaultLiveMedia, "UDP address that carries all WebRTC media")
	fs.StringVar(&o.publicIPs, prefix+"public-ip", "", "comma-separated IPs announced as ICE candidates instead of the media address's (1:1 NAT)")
	fs.StringVar(&o.recordDir, prefix+"record-dir", "/live", "directory in reelfs that streams are recorded to (empty: no recording)")
	def := live.DefaultConfig()
	fs.Float64Var(&o.rate, prefix+"session-rate", def.SessionRate, "WHIP/WHEP sessions a client IP may create per second (after its burst)")
	fs.IntVar(&o.burst, prefix+"session-burst", def.SessionBurst, "WHIP/WHEP sessions a client IP may create at once")
	fs.StringVar(&o.token, prefix+"token", e.getenv("REELFS_LIVE_TOKEN"), "bearer token WHIP/WHEP requests must carry (env REELFS_LIVE_TOKEN; default: the cluster secret)")
	return o
}

// config fills a live.Config; secret is the cluster secret, the token's default.
func (o *liveOpts) config(secret, httpBase string, log *slog.Logger) live.Config {
	cfg := live.DefaultConfig()
	cfg.Listen, cfg.MediaListen, cfg.RecordDir, cfg.HTTPBase, cfg.Logger = o.listen, o.media, o.recordDir, httpBase, log
	cfg.Secret, cfg.SessionRate, cfg.SessionBurst = o.token, o.rate, o.burst
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	if o.publicIPs != "" {
		cfg.PublicIPs = strings.Split(o.publicIPs, ",")
	}
	return cfg
}

// banner describes a running live server.
func liveBanner(s *live.Server) string {
	u := "http://" + s.Addr()
	return fmt.Sprintf("%s/live/   (publish: %s/live/NAME?publish or WHIP %s/whip/NAME; watch: %s/live/NAME; media udp %s)",
		u, u, u, u, s.MediaAddr())
}

func liveCommand() command {
	return command{
		name: "live", usage: "", summary: "run the WebRTC server: WHIP in, WHEP out, streams recorded into reelfs while live",
		define: func(fs *pflag.FlagSet, e *env) runFunc {
			co := defineClientFlags(fs, e)
			lo := defineLiveFlags(fs, e, "")
			httpBase := fs.String("http-base", "http://"+defaultHTTP, "base URL of the httpd that serves recordings (for links)")
			consulAddr := consulFlag(fs, e)
			logger := logFlags(fs, e)
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usageError("live takes no arguments")
				}
				log := logger()
				var c *client.Client
				var rec live.FS
				if lo.recordDir != "" {
					var err error
					co.retry = daemonRetry
					if c, err = co.connect(e); err != nil {
						return err
					}
					defer c.Close()
					rec = live.FromClient(c)
				}
				cfg := lo.config(co.secret, *httpBase, log)
				cc, err := newConsul(*consulAddr, log)
				if err != nil {
					return err
				}
				cfg.Consul = cc
				s, err := live.New(cfg, rec)
				if err != nil {
					return err
				}
				log.Info("live listening", "url", "http://"+s.Addr()+"/live/", "media", s.MediaAddr())
				return s.Run(ctx)
			}
		},
	}
}
