package shoal

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/shoal-dev/shoal/client"
)

// Setup is New for a program's main: cfg is overridden by SHOAL_* environment
// variables, then by command-line flags (flag.CommandLine is parsed), and a
// bad configuration exits the process with status 2 and a message naming the
// offending value. Register your own flags before calling it. The service's
// logger (Service.Logger) becomes slog's default, so that the program's own
// logs read like the SDK's; its tracer provider, the W3C propagator and a
// handler that logs OpenTelemetry's errors there become OpenTelemetry's
// globals, so that spans the program makes with otel.Tracer join the
// service's traces.
func Setup(cfg Config, h http.Handler) *Service {
	if err := cfg.FromEnv(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(2)
	}
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	svc, err := New(cfg, h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slog.SetDefault(svc.log)
	if tp := svc.tracing.Provider(); tp != nil {
		otel.SetTracerProvider(tp)
	}
	otel.SetTextMapPropagator(client.Propagator())
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { svc.log.Warn("opentelemetry", "err", err) }))
	return svc
}

// Main runs s until SIGTERM or SIGINT, drains it, and exits the process:
// status 0 after a clean drain, 1 otherwise.
func (s *Service) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	// After the first signal, the default handling comes back: a second
	// Ctrl-C ends a drain that takes too long.
	context.AfterFunc(ctx, stop)
	err := s.Run(ctx)
	stop()
	if err != nil {
		s.log.Error("exit", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Main is Setup(cfg, h).Main(): the whole main of most services.
func Main(cfg Config, h http.Handler) { Setup(cfg, h).Main() }
