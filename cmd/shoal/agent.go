package main

import (
	"flag"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/deploy"
)

func newAgent(e env) *cobra.Command {
	// SHOAL_* variables (a pod's) are defaults the flags override; a bad
	// one is reported only when the agent runs.
	var cfg shoal.Config
	envErr := cfg.FromEnv(e.getenv)
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // cobra reports flag errors
	cfg.RegisterFlags(fs)
	a := &deploy.Agent{}
	c := &cobra.Command{
		Use:   "agent [flags] -- COMMAND [ARG...]",
		Short: "Run a program that does not use the SDK as an instance, in its container",
		Long: `agent runs COMMAND, a program in any language that speaks HTTP, as one
instance of a Shoal service inside a container, without a sidecar: what
shoal up's supervisor does for command: services on one machine.

The program gets its port as PORT (--program-addr, on loopback). Once its
health check (--health) answers 200, the agent joins gossip as an instance
of the service at its own address (SHOAL_ADDR, advertised as
SHOAL_ADVERTISE_ADDR) and forwards every request to the program, with the
SDK's admission control, metrics and admin endpoints (/healthz, /readyz,
/metrics). On SIGTERM it drains like an SDK service (draining in gossip,
in-flight requests finish, leave), then stops the program. If the program
exits or fails --unhealthy-after checks in a row, the agent drains and
exits 1, so that the container is restarted.

The images 'shoal image' builds for command: services start with it, and
'shoal export kubernetes' sets the SHOAL_* variables it reads.`,
		Example: `  SHOAL_NAME=trailers SHOAL_SEEDS=flix-gossip:7946 shoal agent --health /healthz -- python3 trailers.py
  shoal agent --name trailers --addr :8080 --program-addr 127.0.0.1:8081 -- ./server`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("agent: give the program to run after --, e.g. shoal agent -- python3 app.py")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if envErr != nil {
				return envErr
			}
			if cfg.Logger == nil {
				cfg.Logger = slog.New(slog.NewJSONHandler(e.stderr, nil))
			}
			a.Config, a.Command = cfg, args
			a.Stdout, a.Stderr = e.stdout, e.stderr
			ctx, stop := signalContext(c.Context())
			defer stop()
			return a.Run(ctx)
		},
	}
	c.Flags().SetInterspersed(false) // what follows the program is its own
	c.Flags().AddGoFlagSet(fs)
	c.Flags().StringVar(&a.Health, "health", "/", "path of the program's health check (200 when it serves)")
	c.Flags().StringVar(&a.ProgramAddr, "program-addr", "", "loopback HOST:PORT the program listens on; it gets PORT (default 127.0.0.1:8081)")
	c.Flags().DurationVar(&a.ReadyTimeout, "ready-timeout", 0, "how long the program may take to pass its first health check (default 1m)")
	c.Flags().IntVar(&a.UnhealthyAfter, "unhealthy-after", 0, "failed health checks in a row (one a second) that end the instance (default 10)")
	return c
}
