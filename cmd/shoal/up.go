package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/dashboard"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/supervisor"
)

func newUp(e env, file *string) *cobra.Command {
	var verbose bool
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
drain timeout. A second Ctrl-C stops at once. Instances die with shoal up even if it is killed.`,
		Example: `  shoal up
  shoal up -f ~/src/shop/shoal.yaml
  NO_COLOR=1 shoal up > up.log`,
		Args: exactArgs(0, "no arguments (the manifest is -f FILE)"),
		RunE: func(c *cobra.Command, _ []string) error {
			m, err := manifest.Load(manifestFile(*file))
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("up: %w; give the manifest's path with -f FILE, or write one (the Shoal repository's shoal.yaml is an example)", err)
			}
			if err != nil {
				return err
			}
			// The gateway's own checks (its key files), as its instances
			// will run them, so that a bad key stops up before it starts
			// anything.
			if m.Gateway != nil {
				if err := gateway.Check(m.Gateway, m.Dir); err != nil {
					return err
				}
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
	return c
}
