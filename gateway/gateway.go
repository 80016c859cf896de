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
// client (429 with RateLimit headers) and CORS (preflights answered at the
// gateway). Each request goes through, in order: identity headers stripped,
// CORS, authentication, rate limit, body limit, rewrite, proxy. The
// verified identity reaches the service in Shoal-Subject and Shoal-Auth,
// which the gateway always strips from incoming requests, so they cannot be
// forged.
//
// Every request leaves with an X-Request-Id (the caller's if sane, else a
// new one, also returned on the response) and a W3C traceparent: the
// caller's trace if its traceparent is valid, else a new one. The gateway
// is a hop of the trace: a server span per request (the SDK's when it runs
// as an SDK service, else its own with Gateway.Tracing) and, through the
// client transport, a client span per proxied call and per further attempt.
// Optionally the gateway writes a JSON access log line per request, and it
// records per-route RED metrics (telemetry.RouteMetrics).
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
// are for the supervisor and operators.
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
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/telemetry"
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
	// Tracing records a server span per request when no SDK server did
	// (the gateway served on a listener of its own); nil records none.
	// Either way the request's ID and trace context are taken in, as the
	// SDK's server does (telemetry.Tracing.Middleware).
	Tracing *telemetry.Tracing

	resolver client.Resolver
	route    http.Handler // g.serve, made once
	proxy    *httputil.ReverseProxy
	table    atomic.Pointer[table]
	seen     sync.Map // service names that have had instances: empty now means unavailable, not unknown
}

// New returns a Gateway with default routes only, that checks service
// names with r and sends requests through rt, usually the
// *client.Transport resolving names with the same r. It does no I/O.
func New(r client.Resolver, rt http.RoundTripper) *Gateway {
	g := &Gateway{resolver: r}
	g.route = http.HandlerFunc(g.serve)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      rt,
		ModifyResponse: modifyResponse,
		ErrorHandler:   g.proxyError,
		// Without a pool every response copies through a fresh 32 KiB
		// buffer: three quarters of the bytes the gateway allocated per
		// request, and most of its GC work (bench/gateway profile).
		BufferPool: bufferPool{},
		// Errors are answered by proxyError; what is left (a response body
		// cut short) goes to the logger too, read when it is written so
		// that Logger may be set after New.
		ErrorLog: log.New(logWriter{g}, "", 0),
	}
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
	t.keepLimiters(g.table.Load())
	g.table.Store(t)
	return nil
}

// request is what the gateway knows about one request, from routing to
// the access log.
type request struct {
	label   string // route label for logs and metrics
	service string // "" until the service is known
	path    string // at the service
	rawPath string // escaped path at the service, if it differs
	id      string // X-Request-Id
	subject string
	ident   Identity // verified identity, anonymous for AuthNone routes
	limit   int64    // on the body
	// tooLarge is set when the body passed its limit while being read.
	tooLarge atomic.Bool
	// headerTimer bounds a stream's wait for its response headers only.
	headerTimer *time.Timer
}

type requestKey struct{}

// ServeHTTP routes r, or answers with a JSON error when it cannot.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if client.RequestID(r.Context()) == "" {
		// No SDK server took the request in: it enters here.
		g.Tracing.Serve(w, r, g.route)
		return
	}
	g.serve(w, r)
}

// serve is ServeHTTP once the request has its ID and trace context.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		r = r.WithContext(newTrace(r.Context()))
	}
	t := g.table.Load() // kept for the whole request, whatever reloads meanwhile
	st := &request{label: "none"}
	orig := w
	if rec := g.recorder(w, t); rec != nil {
		w = rec
		defer g.finish(rec, r, st)
	}
	// Only the gateway says who the caller is.
	r.Header.Del(SubjectHeader)
	r.Header.Del(AuthHeader)
	st.id = client.RequestID(r.Context())

	p := cleanPath(r.URL.Path)
	method := r.Method
	preflight := method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		// A preflight asks about the method to come: route it as that.
		method = r.Header.Get("Access-Control-Request-Method")
	}
	rt, wrongMethod := t.match(r.Host, p, method)
	if preflight && (rt == nil || rt.cors == nil) {
		rt, wrongMethod = t.match(r.Host, p, r.Method)
	}
	switch {
	case rt != nil:
		g.serveRoute(w, r, orig, t, rt, st, p)
	case wrongMethod:
		allow := t.allow(r.Host, p)
		w.Header().Set("Allow", allow)
		shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; use %s", truncate(r.Method, 16), truncate(p, 128), allow))
	case t.defaultRoutes:
		st.label = "default"
		g.serveDefault(w, r, orig, t, st)
	default:
		shoal.WriteError(w, http.StatusNotFound, "no_route", fmt.Sprintf("no route for %s", truncate(p, 128)))
	}
}

// serveRoute serves a request a configured route took.
func (g *Gateway) serveRoute(w http.ResponseWriter, r *http.Request, orig http.ResponseWriter, t *table, rt *compiledRoute, st *request, p string) {
	st.label, st.service = rt.name, rt.service
	if rt.cors != nil && applyCORS(rt.cors, w, r) {
		return // a preflight, answered
	}
	var id Identity
	if rt.auth != AuthNone {
		var err error
		if id, err = t.auth.authenticate(r, rt.auth); err != nil {
			writeAuthError(w, err)
			return
		}
		st.ident = id // set on the outgoing request by rewrite, after hop-by-hop headers are gone
		st.subject = id.Subject
	}
	if rt.limiter != nil {
		key := "route"
		if !rt.perRoute {
			if key = id.Key; key == "" {
				key = "ip:" + clientIP(r)
			}
		}
		if !rt.limiter.allow(w, key) {
			return // the limiter answered 429
		}
	}
	raw := ""
	if p == r.URL.Path {
		raw = r.URL.EscapedPath()
	}
	st.path, st.rawPath = rt.target(p, raw)
	if isAdminPath(st.path) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin path of service %q and is not served through the gateway", path.Clean(st.path), rt.service))
		return
	}
	if len(g.resolver.Instances(rt.service)) == 0 {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("service %q has no instance available right now", rt.service))
		return
	}
	g.forward(w, r, orig, t, st, rt)
}

// serveDefault serves /<service>/<path>.
func (g *Gateway) serveDefault(w http.ResponseWriter, r *http.Request, orig http.ResponseWriter, t *table, st *request) {
	svc, p, raw, ok := parseRoute(r)
	if !ok {
		shoal.WriteError(w, http.StatusNotFound, "no_route",
			"request paths have the form /<service>/<path>, e.g. /catalog/titles/1")
		return
	}
	if !manifest.ValidServiceName(svc) || manifest.Reserved(svc) {
		shoal.WriteError(w, http.StatusNotFound, "unknown_service",
			fmt.Sprintf("no service named %q", truncate(svc, 64)))
		return
	}
	if isAdminPath(p) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin path of service %q and is not served through the gateway", path.Clean(p), svc))
		return
	}
	if t.guarded[svc] {
		shoal.WriteError(w, http.StatusNotFound, "no_route",
			fmt.Sprintf("service %q is served only through its configured routes", svc))
		return
	}
	if len(g.resolver.Instances(svc)) == 0 {
		if _, known := g.seen.Load(svc); known {
			// Scaled to zero or all down right now: try again, not "never".
			st.service = svc
			w.Header().Set("Retry-After", "1")
			shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("service %q has no instance available right now", svc))
			return
		}
		shoal.WriteError(w, http.StatusNotFound, "unknown_service", fmt.Sprintf("no service named %q", svc))
		return
	}
	if _, known := g.seen.Load(svc); !known {
		g.seen.Store(svc, struct{}{})
	}
	st.service, st.path, st.rawPath = svc, p, raw
	g.forward(w, r, orig, t, st, nil)
}

// forward applies the body limit and the deadline and proxies the request;
// rt is nil for default routes.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, orig http.ResponseWriter, t *table, st *request, rt *compiledRoute) {
	limit, timeout := t.maxBody, t.timeout
	if rt != nil {
		limit = rt.maxBody
		if rt.timeout > 0 {
			timeout = rt.timeout
		}
	}
	if timeout <= 0 {
		timeout = g.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	st.limit = limit
	if r.ContentLength > limit {
		writeTooLarge(w, limit)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// The server's own writer, so that net/http closes the connection
		// after a body it will not read to the end.
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(orig, r.Body, limit), st: st}
	}
	if err := bufferBody(r); err != nil {
		if tooLarge(err) {
			writeTooLarge(w, limit)
			return
		}
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "reading the request body: "+err.Error())
		return
	}
	ctx := r.Context()
	if wantsStream(r.Header) {
		// A stream (WebSocket, server-sent events) lasts as long as its
		// caller wants: the timeout bounds only the wait for its headers.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		st.headerTimer = time.AfterFunc(timeout, func() { cancel(context.DeadlineExceeded) })
		defer st.headerTimer.Stop()
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if rt != nil && rt.hasPolicy {
		ctx = client.WithPolicy(ctx, rt.policy)
	}
	ctx = context.WithValue(ctx, requestKey{}, st)
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// parseRoute splits the request path into the service and the rest (as
// decoded, and as the client escaped it when that differs). It reports
// false for "/" and for paths without a service.
func parseRoute(r *http.Request) (service, p, raw string, ok bool) {
	rest := strings.TrimPrefix(r.URL.Path, "/")
	service, rest, _ = strings.Cut(rest, "/")
	if service == "" {
		return "", "", "", false
	}
	p = "/" + rest
	// Keep the client's escaping of the rest (e.g. %2F inside a segment)
	// when the escaped path starts the same way; otherwise let net/url
	// escape the decoded path again.
	if esc, ok := strings.CutPrefix(r.URL.EscapedPath(), "/"+service+"/"); ok {
		raw = "/" + esc
	}
	return service, p, raw, true
}

// eventsPath is the SDK's events inbox (events.Path): producers POST to it
// over the mesh; from outside it would let anyone forge events.
const eventsPath = "/_events"

// isAdminPath reports whether p reaches an SDK admin endpoint or the events
// inbox, however it is spelled (dot segments, trailing or doubled slashes,
// case).
func isAdminPath(p string) bool {
	c := strings.ToLower(path.Clean("/" + strings.Trim(p, "/")))
	return adminPaths[c] || c == eventsPath || strings.HasPrefix(c, eventsPath+"/")
}

// rewrite is the ReverseProxy's Rewrite hook: send the request to the
// service by name (the client resolves it), query kept.
func rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(requestKey{}).(*request)
	pr.SetXForwarded()
	// Set here, not on the incoming request: ReverseProxy has removed the
	// hop-by-hop headers by now, including any the caller named in
	// Connection (Connection: Shoal-Subject would drop the gateway's own).
	h := pr.Out.Header
	h.Del(SubjectHeader)
	h.Del(AuthHeader)
	setIdentity(h, st.ident)
	h.Set(shoal.RequestIDHeader, st.id)
	// The client transport sets traceparent and tracestate from the
	// context: the gateway's span is the service's parent.
	u := pr.Out.URL
	u.Scheme = "http"
	u.Host = st.service
	u.Path = st.path
	u.RawPath = ""
	if st.rawPath != "" && st.rawPath != st.path {
		u.RawPath = st.rawPath
	}
	pr.Out.Host = "" // the service name, from the URL
}

// modifyResponse runs when the service's response headers arrive.
func modifyResponse(resp *http.Response) error {
	if resp.Request != nil {
		if st, ok := resp.Request.Context().Value(requestKey{}).(*request); ok && st.headerTimer != nil && streaming(resp) {
			st.headerTimer.Stop() // the stream is on: it lasts as long as the caller wants
		}
	}
	// The gateway has set its own (the same, unless the caller's was not
	// sane); two would be one too many.
	resp.Header.Del(shoal.RequestIDHeader)
	return nil
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

// limitedBody notes when the body limit stops a read, so that the answer is
// 413 whatever error the transport makes of it.
type limitedBody struct {
	io.ReadCloser
	st *request
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && tooLarge(err) {
		b.st.tooLarge.Store(true)
	}
	return n, err
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	shoal.WriteError(w, http.StatusRequestEntityTooLarge, "too_large",
		fmt.Sprintf("the request body is larger than this route's limit of %s", Size(limit)))
}

// proxyError answers a request that got no response from any instance. The
// client sees the service name and the kind of failure, never instance
// addresses; the log gets the whole error.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(requestKey{}).(*request)
	if st == nil {
		st = &request{}
	}
	if st.tooLarge.Load() || tooLarge(err) {
		writeTooLarge(w, st.limit)
		return
	}
	if r.Context().Err() != nil && errors.Is(context.Cause(r.Context()), context.Canceled) {
		// The caller went away: nobody reads this answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	code, status, msg := classify(st.service, err)
	g.logger().WarnContext(r.Context(), "proxy failed", "service", st.service, "route", st.label, "method", r.Method, "path", st.path,
		"status", status, "request_id", st.id, "err", err)
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// copyBufferSize is the size of the buffers responses are copied through,
// ReverseProxy's own default.
const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

func (bufferPool) Get() []byte { return *copyBuffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		copyBuffers.Put(&b)
	}
}
