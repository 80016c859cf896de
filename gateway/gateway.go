// Package gateway is Shoal's front door: an http.Handler that routes
// /<service>/<path> to http://<service>/<path> through the resilient client
// transport, so that requests from outside get the same balancing, deadlines
// and failover as calls between services.
//
// This is the minimal gateway: routing, a deadline per request, JSON errors
// and X-Forwarded-* headers. Run it as an ordinary SDK service (several
// instances, like any other) with the service's own resolver and transport;
// the handler is only called once the service runs, so it can be created
// after the service:
//
//	var gw *gateway.Gateway
//	svc := shoal.Setup(shoal.Config{Name: "gateway"}, http.HandlerFunc(
//		func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r) }))
//	gw = gateway.New(svc, svc.Transport())
//	svc.Main()
//
// Errors are JSON ({"error": {"code": ..., "message": ...}}): 404 for a path
// without a service, an unknown service or an admin path; 502, 503 (with
// Retry-After) or 504 when no instance of the service gave an answer.
//
// A service's admin endpoints (/healthz, /readyz, /infoz, /metrics) are not reachable
// through the gateway; they are for the supervisor and operators.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
)

// DefaultTimeout bounds a proxied request whose Gateway.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxReplayBody is the largest request body the gateway buffers so that the
// client may replay it on another instance. Larger bodies, and bodies of
// unknown length, stream through: their requests fail over only when the
// first attempt was never sent.
const maxReplayBody = 1 << 20

// adminPaths are the SDK's own endpoints, never proxied.
var adminPaths = map[string]bool{"/healthz": true, "/readyz": true, "/infoz": true, "/metrics": true}

// Gateway routes /<service>/<path> to the service through a client transport.
// Create it with New and set its fields before serving; it is safe for
// concurrent use afterwards.
type Gateway struct {
	// Timeout bounds each proxied request, failover included; the caller's
	// own deadline wins if it is shorter. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one line per failed proxied request (with the full
	// error, which names instances and addresses that clients never see).
	// Nil means slog.Default().
	Logger *slog.Logger

	resolver client.Resolver
	proxy    *httputil.ReverseProxy
	seen     sync.Map // service names that have had instances: empty now means unavailable, not unknown
}

// New returns a Gateway that checks service names with r and sends requests
// through rt, usually the *client.Transport resolving names with the same r.
// It does no I/O.
func New(r client.Resolver, rt http.RoundTripper) *Gateway {
	g := &Gateway{resolver: r}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    rt,
		ErrorHandler: g.proxyError,
		// Errors are answered by proxyError; what is left (a response body
		// cut short) goes to the logger too, read when it is written so
		// that Logger may be set after New.
		ErrorLog: log.New(logWriter{g}, "", 0),
	}
	return g
}

// route is where one request goes: the service, and the path (escaped and
// not) at the service.
type route struct {
	service string
	path    string
	rawPath string
}

type routeKey struct{}

// ServeHTTP routes r, or answers with a JSON error when it cannot.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := parseRoute(r)
	if !ok {
		shoal.WriteError(w, http.StatusNotFound, "no_route",
			"request paths have the form /<service>/<path>, e.g. /catalog/titles/1")
		return
	}
	if !validService(rt.service) || internalService(rt.service) {
		shoal.WriteError(w, http.StatusNotFound, "unknown_service",
			fmt.Sprintf("no service named %q", truncate(rt.service, 64)))
		return
	}
	if isAdminPath(rt.path) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin path of service %q and is not served through the gateway", path.Clean(rt.path), rt.service))
		return
	}
	if len(g.resolver.Instances(rt.service)) == 0 {
		if _, known := g.seen.Load(rt.service); known {
			// Scaled to zero or all down right now: try again, not "never".
			w.Header().Set("Retry-After", "1")
			shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("service %q has no instance available right now", rt.service))
			return
		}
		shoal.WriteError(w, http.StatusNotFound, "unknown_service", fmt.Sprintf("no service named %q", rt.service))
		return
	}
	if _, known := g.seen.Load(rt.service); !known {
		g.seen.Store(rt.service, struct{}{})
	}
	if err := bufferBody(r); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+err.Error())
		return
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	ctx = context.WithValue(ctx, routeKey{}, rt)
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// internalService reports whether name belongs to Shoal itself (the
// supervisor's gossip entry and its control API): never routed.
func internalService(name string) bool { return strings.HasPrefix(name, "shoal-") }

// parseRoute splits the request path into the service and the rest. It
// reports false for "/" and for paths without a service.
func parseRoute(r *http.Request) (route, bool) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	service, rest, _ := strings.Cut(p, "/")
	if service == "" {
		return route{}, false
	}
	rt := route{service: service, path: "/" + rest}
	// Keep the client's escaping of the rest (e.g. %2F inside a segment)
	// when the escaped path starts the same way; otherwise let net/url
	// escape the decoded path again.
	if raw, ok := strings.CutPrefix(r.URL.EscapedPath(), "/"+service+"/"); ok {
		rt.rawPath = "/" + raw
	}
	return rt, true
}

// isAdminPath reports whether p reaches an SDK admin endpoint, however it is
// spelled (dot segments, trailing or doubled slashes, case).
func isAdminPath(p string) bool {
	c := strings.ToLower(path.Clean("/" + strings.Trim(p, "/")))
	return adminPaths[c]
}

// rewrite is the ReverseProxy's Rewrite hook: send the request to the
// service by name (the client resolves it), query kept.
func rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routeKey{}).(route)
	pr.SetXForwarded()
	u := pr.Out.URL
	u.Scheme = "http"
	u.Host = rt.service
	u.Path = rt.path
	u.RawPath = ""
	if rt.rawPath != "" && rt.rawPath != rt.path {
		u.RawPath = rt.rawPath
	}
	pr.Out.Host = "" // the service name, from the URL
}

// bufferBody reads a small body of known length into memory and sets
// GetBody, so that the client can fail over requests that carry one.
func bufferBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength <= 0 || r.ContentLength > maxReplayBody {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	r.Body.Close()
	if err != nil {
		return err
	}
	if int64(len(buf)) != r.ContentLength {
		return io.ErrUnexpectedEOF
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

// proxyError answers a request that got no response from any instance. The
// client sees the service name and the kind of failure, never instance
// addresses; the log gets the whole error.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rt, _ := r.Context().Value(routeKey{}).(route)
	svc := rt.service
	if r.Context().Err() != nil && errors.Is(context.Cause(r.Context()), context.Canceled) {
		// The caller went away: nobody reads this answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	code, status, msg := classify(svc, err)
	g.logger().Warn("proxy failed", "service", svc, "method", r.Method, "path", rt.path,
		"status", status, "err", err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	shoal.WriteError(w, status, code, msg)
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

// logWriter turns the ReverseProxy's log lines into warnings on g's logger.
type logWriter struct{ g *Gateway }

func (lw logWriter) Write(p []byte) (int, error) {
	lw.g.logger().Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (g *Gateway) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.Default()
}

// validService reports whether s can be a service name (see shoal.Config).
func validService(s string) bool {
	if len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
