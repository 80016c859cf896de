// Package gateway is Shoal's front door: an http.Handler that routes
// requests from outside to services through the resilient client transport,
// so that they get the same balancing, deadlines and failover as calls
// between services. Run it as an ordinary SDK service (several instances,
// like any other) with the service's own resolver and transport; the
// handler is only called once the service runs, so it can be created after
// the service:
//
//	var gw *gateway.Gateway
//	svc := shoal.Setup(shoal.Config{Name: "gateway"}, http.HandlerFunc(
//		func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r) }))
//	gw = gateway.New(svc, svc.Transport())
//	svc.Main()
//
// # Routes
//
// As created by New, the gateway routes /<service>/<path> to
// http://<service>/<path> (default routes). A Config (the gateway: key of
// shoal.yaml, read with manifest.ParseGateway) adds routes: a path prefix, optionally a
// host and methods, and the service they go to, with the prefix kept,
// stripped or rewritten. The longest matching prefix wins (segment-wise:
// /v1/titles matches /v1/titles/7, not /v1/titlesx), then a route naming
// the request's host beats one without, then the method; a path whose
// routes take other methods gets 405 with Allow. Default routes serve only
// requests no route matches, and can be switched off (default_routes:
// false, for a front door that exposes only its routes). They never reach
// a service that some route requires credentials for, which would bypass
// the check.
//
// # Per-route policy
//
// A route sets its deadline (timeout; an attempt may use all of it), the
// client's attempts, hedging and an optional per-try timeout for its
// requests (max_attempts, hedge, per_try_timeout), its body limit (max_body; 413
// beyond it, 10 MiB by default), its credentials (auth: jwt, api_key or
// any; 401 without them), a token-bucket rate limit per route or per
// client (429 with RateLimit headers; the client is the connection's peer,
// or what trusted_proxies say) and CORS (preflights answered at the
// gateway). Each request goes through, in order: identity headers stripped,
// CORS, authentication, rate limit, body limit, rewrite, proxy. The
// verified identity reaches the service as a user token (Shoal-User-Token,
// when the gateway has a service identity: Gateway.Tokens), which services
// verify, and for information in Shoal-Subject and Shoal-Auth. A service
// never gets the caller's credentials (Authorization, X-API-Key) nor any
// Shoal-Subject, Shoal-Auth or Shoal-User-Token the caller sent, however
// spelled (Shoal_Subject, any case), and only WebSocket upgrades pass.
// Development credentials (dev: true in the configuration) are refused
// unless AllowDev is set.
//
// Every request leaves with an X-Request-Id (the caller's if sane, else a
// new one, also returned on the response) and a W3C traceparent: the
// caller's trace if its traceparent is valid, else a new one (sampled). The
// gateway is a hop of the trace, on either server: the SDK service it runs
// in records a server span per request, and the client transport a client
// span per proxied call and per further attempt, whose context the service
// continues. Optionally the gateway writes a
// JSON access log line per request, and it records per-route RED metrics
// (telemetry.RouteMetrics).
//
// # Servers
//
// The gateway is an http.Handler, served by the SDK service it runs in.
// shoal gateway gives that service the gateway's own HTTP/1.1 engine
// (Engine, through shoal.Config.Engine) and calls services through
// Upstream (client.Config.Base): purpose-written HTTP/1.1 on both sides,
// with strict parsing (package internal/h1). The engine hands net/http what
// it does not implement (h2c, HTTP/1.0, upgrades); TLS and HTTP/2 are
// net/http's. Both servers call the same handler, so every per-request rule
// lives once, in policy.go.
//
// # Reload
//
// SetConfig swaps the route table atomically: requests in flight keep the
// table they started with, and a configuration that does not validate is
// refused with the old table kept. Reloader watches a manifest file and
// reloads it when it changes (and on demand, e.g. on SIGHUP).
//
// Errors are JSON ({"error": {"code": ..., "message": ...}}): 404 for a path
// without a route, an unknown service or an admin path; 502, 503 (with
// Retry-After) or 504 when no instance of the service gave an answer.
// A service's admin endpoints (/healthz, /readyz, /infoz, /metrics) are
// never reachable through the gateway, whatever a route rewrites to; they
// are for the supervisor and operators. Nor are the gateway's own /metrics
// and /infoz, which belong on its admin listener: the gateway answers them
// 404 rather than route them.
//
// A response that is not a stream must be written within the request's
// time: a caller that stops reading is cut off then, so that it cannot
// hold the call (and its place in the service's bulkhead) any longer.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/manifest"
)

// DefaultTimeout bounds a proxied request when neither its route, the
// Config nor Gateway.Timeout set a timeout.
const DefaultTimeout = 10 * time.Second

// maxReplayBody is the largest request body the gateway buffers so that the
// client may replay it on another instance. Larger bodies, and bodies of
// unknown length, stream through: their requests fail over only when the
// first attempt was never sent.
const maxReplayBody = 1 << 20

// adminPaths are the SDK's own endpoints, never proxied.
var adminPaths = map[string]bool{"/healthz": true, "/readyz": true, "/infoz": true, "/metrics": true}

// RouteObserver records each request the gateway answers, e.g.
// *telemetry.RouteMetrics. ObserveRoute is called once per request as it
// ends, on the request's goroutine, from many at once: it must not block.
// route is the route's path prefix, "default" for /<service>/<path>
// routing, or "none"; service is "" when the request named no known
// service.
type RouteObserver interface {
	ObserveRoute(route, service string, code int, d time.Duration)
}

// Gateway routes requests to services through a client transport. Create
// it with New and set its fields before serving; it is safe for concurrent
// use afterwards, and SetConfig may be called at any time.
type Gateway struct {
	// Timeout bounds each proxied request, failover included, when neither
	// its route nor the Config sets a timeout; the caller's own deadline
	// wins if it is shorter. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one line per failed proxied request (with the full
	// error, which names instances and addresses that clients never see).
	// Nil means slog.Default().
	Logger *slog.Logger
	// AccessLog writes an access log line per request even when the
	// Config does not ask for it.
	AccessLog bool
	// AccessLogger receives the access log (see Config.AccessLog); nil
	// means Logger.
	AccessLogger *slog.Logger
	// Metrics, if set, is told of every request.
	Metrics RouteObserver
	// Tokens, if set, vouches for the users the gateway verified: a
	// request that passed a route's auth goes on with a user token
	// (identity.UserTokenHeader) for its subject, which services verify
	// against the system's CA. shoal gateway sets it from the instance's
	// service certificate (SHOAL_IDENTITY_*). Credentials the caller sent
	// never reach a service, with or without it.
	Tokens *identity.TokenIssuer
	// AllowDev accepts credentials the configuration marks dev (keys
	// published with the code), with a warning at every load; without
	// it SetConfig refuses them. shoal gateway sets it from SHOAL_DEV=1
	// (shoal.EnvDev).
	AllowDev bool
	// Chaos, if set, verifies the operator's experiment tokens: with it,
	// PUT and DELETE on ExperimentPath start and stop a live-traffic
	// experiment (see fault.go). The service's own verifier (the
	// operator's public key, for the gateway's service name) serves.
	Chaos *chaos.Verifier
	// CohortMetrics, if set, is told of every request of an experiment's
	// cohorts.
	CohortMetrics CohortObserver

	resolver  client.Resolver
	transport http.RoundTripper
	table     atomic.Pointer[table]
	seen      sync.Map // service names that have had instances: empty now means unavailable, not unknown
	// experiment is the live-traffic experiment running; nil mostly.
	experiment atomic.Pointer[chaos.Experiment]
	// cohortFlight counts the requests of a cohort not yet observed, so
	// that stopping an experiment can wait for them (fault.go).
	cohortFlight atomic.Int64
}

// New returns a Gateway with default routes only, that checks service
// names with r and sends requests through rt, usually the
// *client.Transport resolving names with the same r. It does no I/O.
func New(r client.Resolver, rt http.RoundTripper) *Gateway {
	g := &Gateway{resolver: r, transport: rt}
	t, err := compile(&Config{}, "")
	if err != nil {
		panic("gateway: the zero Config does not compile: " + err.Error())
	}
	g.table.Store(t)
	return g
}

// SetConfig compiles cfg, reading the key files it refers to relative to
// baseDir (the manifest's folder), and makes it the route table of every
// request that starts from now on. A configuration that does not validate
// is refused: the error says why, and the table in use stays.
func (g *Gateway) SetConfig(cfg *Config, baseDir string) error {
	if cfg == nil {
		cfg = &Config{}
	}
	t, err := compile(cfg, baseDir)
	if err != nil {
		return err
	}
	if len(t.devKeys) > 0 {
		if !g.AllowDev {
			errs := make([]error, len(t.devKeys))
			for i, p := range t.devKeys {
				errs[i] = cfg.Errorf(p, "is a development credential, published with the code: anyone can sign in with it; "+
					"use keys of your own, or set %s=1 where that is what you want (development only)", shoal.EnvDev)
			}
			return manifest.Join(errs...)
		}
		g.logger().Warn("gateway: DEVELOPMENT CREDENTIALS IN USE: anyone can sign in with them; never expose this gateway",
			"credentials", t.devKeys, "because", shoal.EnvDev+"=1")
	}
	t.keepLimiters(g.table.Load())
	g.table.Store(t)
	return nil
}

// classify maps a client error to an error code, a status and a message
// safe to show outside.
func classify(svc string, err error) (code string, status int, msg string) {
	var cerr *client.Error
	attempts := 0
	if errors.As(err, &cerr) {
		attempts = len(cerr.Attempts)
	}
	switch {
	case errors.Is(err, client.ErrNoInstances):
		return "unavailable", http.StatusServiceUnavailable,
			fmt.Sprintf("no instance of service %q is available; retry shortly", svc)
	case errors.Is(err, client.ErrBulkheadFull), errors.Is(err, client.ErrThrottled):
		return "unavailable", http.StatusServiceUnavailable,
			fmt.Sprintf("service %q is shedding load; retry shortly", svc)
	case errors.Is(err, client.ErrBudgetExhausted):
		return "unavailable", http.StatusServiceUnavailable,
			fmt.Sprintf("service %q is failing (%s); retry shortly", svc, plural(attempts, "attempt"))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, client.ErrAttemptTimeout):
		return "timeout", http.StatusGatewayTimeout,
			fmt.Sprintf("service %q did not answer in time (%s)", svc, plural(attempts, "attempt"))
	}
	return "bad_gateway", http.StatusBadGateway,
		fmt.Sprintf("service %q could not be reached (%s failed)", svc, plural(attempts, "attempt"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (g *Gateway) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// copyBufferSize is the size of the buffers bodies are copied through
// (httputil.ReverseProxy's default): pooled, since a fresh one per request
// was most of the gateway's garbage (docs/BENCHMARKS.md).
const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}
