package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/telemetry"
)

// envGatewayConfig names the manifest whose gateway: key configures the
// gateway, when --config is not given.
const envGatewayConfig = "SHOAL_GATEWAY_CONFIG"

func newGateway(e env) *cobra.Command {
	// No admission control by default: a gateway's latency is its
	// upstreams', which the adaptive limit would read as a queue of its own
	// and answer with 503s to the outside; each service protects itself, and
	// the client's throttle and bulkhead protect the services from the
	// gateway. SHOAL_ADMISSION=on brings it back.
	// The front door serves the outside: no client certificates, no Guard
	// (it authenticates end users itself); its identity, when shoal up
	// gives it one, makes its calls to services mutual TLS.
	cfg := shoal.Config{Name: "gateway", Identity: shoal.Identity{Edge: true}}
	cfg.Admission.Disabled = true
	// SHOAL_* variables (set by the supervisor) are defaults the flags
	// override; a bad one is reported only when the gateway runs.
	envErr := cfg.FromEnv(e.getenv)
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // cobra reports flag errors
	cfg.RegisterFlags(fs)
	var (
		configPath = e.getenv(envGatewayConfig)
		accessLog  bool
		engine     = true
	)

	c := &cobra.Command{
		Use:   "gateway",
		Short: "Run the front door: routes requests to services",
		Long: `gateway runs one instance of the front door, an SDK service: a request for
/<service>/<path> goes to <path> of <service> through the resilient client
(balanced across instances, deadline-bounded, failed over), and a service
that does not exist gets a 404 JSON error.

With --config (or ` + envGatewayConfig + `), the gateway: key of that manifest adds
routes (path prefix, host, methods, rewrite), per-route timeouts, retries,
body limits, authentication (JWT, API keys), rate limits and CORS. A bad
file stops the gateway before it starts; once it runs, the file is checked
every second and on SIGHUP, and a changed one replaces the routes without
dropping a request (a bad one is logged and the routes in use stay).

shoal up starts it from the manifest (build: ./cmd/shoal, args: [gateway]),
setting PORT and the SHOAL_* variables; run by hand, give at least --seeds
to join a running system. Flags override the environment.`,
		Example: `  shoal gateway --addr 127.0.0.1:8080 --seeds 127.0.0.1:7946
  shoal gateway --config shoal.yaml --access-log
  curl http://127.0.0.1:8080/titles/1`,
		Args: exactArgs(0, "no arguments (configure it with flags)"),
		RunE: func(c *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			if e.getenv("GOGC") == "" {
				// The gateway's live heap is small and its garbage is per
				// request, so at the default GOGC=100 it collects all the
				// time; 400 trades a few MB for a quarter of the GC work.
				debug.SetGCPercent(400)
			}
			logger := slog.New(slog.NewJSONHandler(e.stderr, nil))
			if cfg.Logger == nil {
				cfg.Logger = logger
			}
			if engine {
				// HTTP/1.1 on both sides by the gateway's own engine;
				// HTTP/2, TLS and upgrades stay with net/http.
				cfg.Engine = gateway.NewEngine()
				cfg.Client.Base = gateway.NewUpstream()
			}
			mux := http.NewServeMux()
			svc, err := shoal.New(cfg, mux)
			if err != nil {
				return err
			}
			gw := gateway.New(svc, svc.Transport())
			// The service's loggers: a line logged with a request's context
			// carries its trace_id, span_id and request_id.
			gw.Logger = svc.Logger()
			gw.AccessLog = accessLog
			gw.AccessLogger = slog.New(telemetry.NewLogHandler(logger.Handler()))
			gw.AllowDev = shoal.DevAllowed(e.getenv)
			var idSource *identity.Source // renewed certificates, read by its Run below
			if gw.Tokens, idSource, err = tokenIssuer(e.getenv, cfg.Logger); err != nil {
				return err
			}
			if gw.Metrics, err = telemetry.NewRouteMetrics(svc.Metrics().Registry()); err != nil {
				return err
			}
			// Live-traffic experiments, with the operator's key shoal up
			// hands over (SHOAL_FAULT_KEY): see package chaos.
			if gw.Chaos, err = chaos.NewVerifier(cfg.FaultKey, cfg.Name); err != nil {
				return err
			}
			if gw.CohortMetrics, err = telemetry.NewCohortMetrics(svc.Metrics().Registry()); err != nil {
				return err
			}
			var reloader *gateway.Reloader
			if configPath != "" {
				reloader = gateway.NewReloader(configPath, gw, cfg.Logger)
				if err := reloader.Reload(); err != nil {
					return err // logged too; the file:line problems reach the terminal
				}
			}
			mux.Handle("/", gw)
			var ctx context.Context
			var stop context.CancelFunc
			hup := make(chan os.Signal, 1)
			if reloader == nil {
				ctx, stop = signalContext(c.Context())
			} else {
				// SIGHUP reloads the routes here rather than stopping.
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				ctx, stop = signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			}
			defer stop()
			var wg sync.WaitGroup
			defer wg.Wait() // after stop: every goroutine ends with ctx
			if reloader != nil {
				wg.Go(func() { _ = reloader.Run(ctx) })
				wg.Go(func() { reloadOn(ctx, hup, reloader) })
			}
			if idSource != nil {
				wg.Go(func() { _ = idSource.Run(ctx) })
			}
			err = svc.Run(ctx)
			stop()
			return err
		},
	}
	c.Flags().AddGoFlagSet(fs)
	c.Flags().StringVar(&configPath, "config", configPath, "manifest whose gateway: key configures routes, auth and limits, reloaded when it changes (env "+envGatewayConfig+"; relative to the current folder)")
	c.Flags().BoolVar(&engine, "engine", engine, "serve HTTP/1.1 (and call services) with the gateway's own engine; false: net/http alone")
	c.Flags().BoolVar(&accessLog, "access-log", false, "write a JSON access log line per request to stderr (also gateway: access_log: true)")
	return c
}

// tokenIssuer returns the issuer of the user tokens with which the gateway
// vouches for the users it verified, signing with the instance's service
// certificate (SHOAL_IDENTITY_*, which shoal up sets), and the Source whose
// Run keeps that certificate fresh; nil and nil for an instance without
// an identity, whose services then get no user token.
func tokenIssuer(getenv func(string) string, log *slog.Logger) (*identity.TokenIssuer, *identity.Source, error) {
	files, err := identity.FilesFromEnv(getenv)
	if err != nil || files.IsZero() {
		return nil, nil, err
	}
	src, err := identity.LoadSource(files, log)
	if err != nil {
		return nil, nil, err
	}
	tokens, err := identity.NewTokenIssuer(src, 0)
	if err != nil {
		return nil, nil, err
	}
	return tokens, src, nil
}

// reloadOn reloads the gateway's configuration on every signal from hup
// until ctx ends.
func reloadOn(ctx context.Context, hup <-chan os.Signal, r *gateway.Reloader) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = r.Reload() // logged
		}
	}
}
