package main

import (
	"log/slog"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/dashboard"
	"github.com/shoal-dev/shoal/supervisor"
)

func newUp(e env, file *string) *cobra.Command {
	var verbose bool
	var host supervisor.HostOptions
	c := &cobra.Command{
		Use:   "up [-f FILE]",
		Short: "Build and run every service of the manifest until Ctrl-C",
		Long: `up runs the system described by the manifest (default ./shoal.yaml).

It checks the whole manifest first (a mistake stops it with file:line and the
fix), builds the build: services into .shoal/bin, starts every instance,
waits until they are ready, prints the status table, the gateway URL(s) and
the dashboard's URL, then streams each instance's log lines prefixed with
service/index.

The dashboard (on a loopback port; 'shoal dashboard' prints its URL again)
shows the services and the calls between them, each instance's state and
resilience policies, an event feed and the instances' traces. shoal up
collects them: instances get OTEL_EXPORTER_OTLP_ENDPOINT pointing at it,
it scrapes every instance's /metrics every 2 s, and it writes
.shoal/prometheus/targets.json for a Prometheus of your own (file_sd_configs).

With chaos.monkey.enabled: true in the manifest, it also runs the chaos
monkey (see 'shoal chaos monkey') for as long as the system runs.

Ctrl-C, closing the terminal (SIGHUP), SIGTERM or 'shoal down' from another
terminal stops everything gracefully: SIGTERM, drain, then SIGKILL after the
drain timeout. A second Ctrl-C stops at once. Instances die with shoal up even if it is killed.

Several hosts (docs/DEPLOY.md, "Several machines"): on the first host,
--bind its address; instances then listen and gossip on it, and up prints
the gossip address to join (port 7946 unless --gossip-port). Copy its
.shoal/identity, .shoal/gossip.key and .shoal/chaos.key to the other hosts
(keep them 0600), then run there, with the same manifest, shoal up --bind
THAT_HOST --join FIRST_HOST:7946 --only SERVICES. With --join, up refuses
to start without the copied keys: it never makes a CA of its own. shoal ps
on any host lists every host's instances.`,
		Example: `  shoal up
  shoal up -f ~/src/shop/shoal.yaml
  NO_COLOR=1 shoal up > up.log
  shoal up --bind 10.0.0.1 --only gateway,api,catalog
  shoal up --bind 10.0.0.2 --join 10.0.0.1:7946 --only api,catalog,ratings --secrets /etc/shoal/flix`,
		Args: exactArgs(0, "no arguments (the manifest is -f FILE)"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := loadRunnable("up", *file, ", or write one (the Shoal repository's shoal.yaml is an example)")
			if err != nil {
				return err
			}
			// Progress already goes to stdout; stderr gets only what needs
			// attention unless -v.
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			sup, err := supervisor.New(m, supervisor.Options{
				Out:    e.stdout,
				Color:  useColor(e),
				Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})),
				Dashboard: func(s *supervisor.Supervisor, token string) http.Handler {
					return dashboard.New(s, token)
				},
				Host: host,
			})
			if err != nil {
				return err
			}
			ctx, stop := signalContext(c.Context())
			defer stop()
			return runMonkey(ctx, m, sup, sup.Run)
		},
	}
	addFileFlag(c, file, true)
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "also log the supervisor's own diagnostics (info and debug) to stderr")
	c.Flags().StringVar(&host.Bind, "bind", "", "`IP` of this host that instances listen and gossip on (default 127.0.0.1: one machine)")
	c.Flags().StringVar(&host.Advertise, "advertise", "", "`IP` the other hosts reach this one at, if not --bind's (NAT, or --bind 0.0.0.0)")
	c.Flags().IntVar(&host.GossipPort, "gossip-port", 0, "`PORT` of this host's gossip, which --join names (default 7946 off loopback, a free port on it)")
	c.Flags().StringSliceVar(&host.Join, "join", nil, "gossip address `HOST:PORT` of a host already running the system (repeatable; a DNS name joins every address behind it)")
	c.Flags().StringSliceVar(&host.Only, "only", nil, "run only these `SERVICES` of the manifest (comma-separated); other hosts run the rest")
	c.Flags().StringVar(&host.Secrets, "secrets", "", "`DIR` holding the system's keys: identity/, gossip.key, chaos.key (default the manifest's .shoal folder)")
	return c
}
