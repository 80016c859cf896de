package main

import (
	"flag"
	"io"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/gateway"
)

func newGateway(e env) *cobra.Command {
	cfg := shoal.Config{Name: "gateway"}
	// SHOAL_* variables (set by the supervisor) are defaults the flags
	// override; a bad one is reported only when the gateway runs.
	envErr := cfg.FromEnv(e.getenv)
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // cobra reports flag errors
	cfg.RegisterFlags(fs)

	c := &cobra.Command{
		Use:   "gateway",
		Short: "Run the front door: routes /<service>/<path> to that service",
		Long: `gateway runs one instance of the front door, an SDK service: a request for
/<service>/<path> goes to <path> of <service> through the resilient client
(balanced across instances, deadline-bounded, failed over), and a service
that does not exist gets a 404 JSON error.

shoal up starts it from the manifest (build: ./cmd/shoal, args: [gateway]),
setting PORT and the SHOAL_* variables; run by hand, give at least --seeds
to join a running system. Flags override the environment.`,
		Example: `  shoal gateway --addr 127.0.0.1:8080 --seeds 127.0.0.1:7946
  curl http://127.0.0.1:8080/api/titles/1`,
		Args: exactArgs(0, "no arguments (configure it with flags)"),
		RunE: func(c *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			mux := http.NewServeMux()
			svc, err := shoal.New(cfg, mux)
			if err != nil {
				return err
			}
			mux.Handle("/", gateway.New(svc, svc.Transport()))
			ctx, stop := signalContext(c.Context())
			defer stop()
			return svc.Run(ctx)
		},
	}
	c.Flags().AddGoFlagSet(fs)
	return c
}
