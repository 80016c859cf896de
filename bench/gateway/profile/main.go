// Command profile is `shoal gateway` (the wiring of cmd/shoal/gateway.go:
// an SDK service named "gateway" whose handler is gateway.New over the
// service's own transport, with per-route metrics and an optional
// --config) plus net/http/pprof on a separate listener, so that the gateway
// benchmark can take a CPU profile of the gateway under load without the
// CLI growing a profiling flag. Keep it in step with cmd/shoal/gateway.go.
//
//	go run ./bench/gateway -profile cpu.pprof   # runs it, profiles it under wrk
//	go tool pprof -top -cum cpu.pprof
//
// By hand: profile -pprof 127.0.0.1:6060 -addr 127.0.0.1:8080 -seeds ...,
// then go tool pprof 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/pprof"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/telemetry"
)

func main() {
	addr := flag.String("pprof", "127.0.0.1:6060", "listen address of /debug/pprof/")
	config := flag.String("config", "", "manifest whose gateway: key configures the routes (as shoal gateway --config)")
	mux := http.NewServeMux()
	cfg := shoal.Config{Name: "gateway", Engine: gateway.NewEngine()}
	cfg.Client.Base = gateway.NewUpstream()
	svc := shoal.Setup(cfg, mux)
	gw := gateway.New(svc, svc.Transport())
	metrics, err := telemetry.NewRouteMetrics(svc.Metrics().Registry())
	if err != nil {
		log.Fatal(err)
	}
	gw.Metrics = metrics
	if *config != "" {
		if err := gateway.NewReloader(*config, gw, nil).Reload(); err != nil {
			log.Fatal(err)
		}
	}
	mux.Handle("/", gw)

	debug := http.NewServeMux()
	debug.HandleFunc("/debug/pprof/", pprof.Index)
	debug.HandleFunc("/debug/pprof/profile", pprof.Profile)
	// Lives as long as the process; the runner kills it.
	go func() { log.Fatal(http.ListenAndServe(*addr, debug)) }()
	svc.Main()
}
