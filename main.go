package shoal

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Main runs h as a service and exits the process when it stops: cfg, then
// SHOAL_* environment variables, then command-line flags configure it;
// SIGTERM or SIGINT starts a graceful drain. It is the whole main of most
// services.
func Main(cfg Config, h http.Handler) {
	if err := cfg.FromEnv(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg.RegisterFlags(flag.CommandLine)
	flag.Parse()
	svc, err := New(cfg, h)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := svc.Run(ctx); err != nil {
		svc.log.Error("exit", "err", err)
		stop()
		os.Exit(1)
	}
}
