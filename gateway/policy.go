package gateway

// The policy: every rule about what a request may do and what the service
// sees of it — routing, identity, CORS, authentication, rate limits, body
// limits, deadlines, admin-path refusal, and the header rules of the
// outgoing request — in one place, written once. Both servers reach it the
// same way: the engine (engine.go) and net/http each call the SDK
// service's handler, which calls Gateway.ServeHTTP, which runs admit, then
// send, then forward (proxy.go), whose outgoing request takes its headers
// from outgoingHeaders here. A new rule goes in this file, never in a
// server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/statuswriter"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/telemetry"
)

// request is what the gateway knows about one request, from routing to
// the access log.
type request struct {
	label     string // route label for logs and metrics
	service   string // "" until the service is known
	path      string // at the service
	rawPath   string // escaped path at the service, if it differs
	id        string // X-Request-Id
	idv       [1]string
	forwarded [3]string // X-Forwarded-For, -Host, -Proto values
	client    string    // the client's address (clientAddr)
	subject   string
	ident     Identity  // verified identity, anonymous for AuthNone routes
	token     [1]string // the user token vouching for ident; "" without one
	timeout   time.Duration
	trailer   http.Header    // the caller's trailers, forwarded: stripped as they arrive
	route     *compiledRoute // nil for default routes
	limit     int64          // on the body
	// tooLarge is set when the body passed its limit while being read;
	// bodyErr when reading it failed otherwise.
	tooLarge atomic.Bool
	bodyErr  atomic.Pointer[error]
	// headerTimer bounds a stream's wait for its response headers only.
	headerTimer *time.Timer
	// cohort and experiment: the live-traffic experiment's cohort the
	// request is in (fault.go); "" mostly.
	cohort, experiment string
}

const requestIDKey = "X-Request-Id" // shoal.RequestIDHeader, canonical

// ServeHTTP routes r, or answers with a JSON error when it cannot.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if client.RequestID(r.Context()) == "" {
		// No SDK service took the request in (a server of the caller's):
		// take its ID and trace context in as one would.
		r = r.WithContext(telemetry.Incoming(w, r))
	}
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		// No trace, and none started here (tracing off): the services
		// behind still get one, to trace and to tie their logs together.
		r = r.WithContext(newTrace(r.Context()))
	}
	if g.serveExperiment(w, r) {
		return
	}
	t := g.table.Load() // kept for the whole request, whatever reloads meanwhile
	st := &request{label: "none"}
	orig := w
	if rec := g.recorder(w, t); rec != nil {
		w = rec
		defer g.finish(rec, r, st)
	}
	if g.admit(w, r, t, st) {
		g.send(w, r, orig, t, st)
	}
}

// admit applies the policy to r: it either answers r itself (an error, a
// preflight, 429) and returns false, or fills st with where r goes and
// returns true.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, t *table, st *request) bool {
	// Only the gateway says who the caller is.
	delete(r.Header, SubjectHeader)
	delete(r.Header, AuthHeader)
	delete(r.Header, chaos.Header) // only a verified token, from the context, goes on
	st.id = client.RequestID(r.Context())
	st.idv[0] = st.id
	w.Header()[requestIDKey] = st.idv[:]
	st.client = clientAddr(r, t.proxies)

	p := cleanPath(r.URL.Path)
	if gatewayAdminPath(p) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin endpoint of the gateway, not served on its public listener", strings.ToLower(strings.TrimSuffix(p, "/"))))
		return false
	}
	method := r.Method
	preflight := method == http.MethodOptions && headerValue(r.Header, "Origin") != "" &&
		headerValue(r.Header, "Access-Control-Request-Method") != ""
	if preflight {
		// A preflight asks about the method to come: route it as that.
		method = headerValue(r.Header, "Access-Control-Request-Method")
	}
	rt, wrongMethod := t.match(r.Host, p, method)
	if preflight && (rt == nil || rt.cors == nil) {
		rt, wrongMethod = t.match(r.Host, p, r.Method)
	}
	switch {
	case rt != nil:
		return g.admitRoute(w, r, t, rt, st, p)
	case wrongMethod:
		allow := t.allow(r.Host, p)
		w.Header().Set("Allow", allow)
		shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; use %s", truncate(r.Method, 16), truncate(p, 128), allow))
	case t.defaultRoutes:
		st.label = "default"
		return g.admitDefault(w, r, t, st)
	default:
		shoal.WriteError(w, http.StatusNotFound, "no_route", fmt.Sprintf("no route for %s", truncate(p, 128)))
	}
	return false
}

// admitRoute applies a configured route's policy.
func (g *Gateway) admitRoute(w http.ResponseWriter, r *http.Request, t *table, rt *compiledRoute, st *request, p string) bool {
	st.label, st.service, st.route = rt.name, rt.service, rt
	if rt.cors != nil && applyCORS(rt.cors, w, r) {
		return false // a preflight, answered
	}
	var id Identity
	if rt.auth != AuthNone {
		var err error
		if id, err = t.auth.authenticate(r, rt.auth); err != nil {
			writeAuthError(w, err)
			return false
		}
		st.ident = id // set on the outgoing request by outgoingHeaders, after hop-by-hop removal
		st.subject = id.Subject
	}
	if rt.limiter != nil {
		key := "route"
		if !rt.perRoute {
			if key = id.Key; key == "" {
				key = "ip:" + st.client
			}
		}
		if !rt.limiter.allow(w, key) {
			return false // the limiter answered 429
		}
	}
	if g.Tokens != nil && id.Subject != "" {
		tok, err := g.Tokens.Token(id.Subject, id.authHeader())
		if err != nil {
			// The user is who they say, but the gateway cannot vouch for
			// it (its certificate expired, say): no service would accept
			// the request.
			g.logger().Error("gateway: minting a user token", "subject", id.Subject, "err", err)
			statuswriter.MarkLogged(w)
			shoal.WriteError(w, http.StatusInternalServerError, "internal", "the gateway cannot vouch for the user right now")
			return false
		}
		st.token[0] = tok
	}
	raw := ""
	if p == r.URL.Path {
		raw = r.URL.EscapedPath()
	}
	st.path, st.rawPath = rt.target(p, raw)
	if isAdminPath(st.path) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin path of service %q and is not served through the gateway", path.Clean(st.path), rt.service))
		return false
	}
	if len(g.resolver.Instances(rt.service)) == 0 {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("service %q has no instance available right now", rt.service))
		return false
	}
	return true
}

// admitDefault applies default routing: /<service>/<path>.
func (g *Gateway) admitDefault(w http.ResponseWriter, r *http.Request, t *table, st *request) bool {
	svc, p, raw, ok := parseRoute(r)
	if !ok {
		shoal.WriteError(w, http.StatusNotFound, "no_route",
			"request paths have the form /<service>/<path>, e.g. /catalog/titles/1")
		return false
	}
	if !manifest.ValidServiceName(svc) || manifest.Reserved(svc) {
		shoal.WriteError(w, http.StatusNotFound, "unknown_service",
			fmt.Sprintf("no service named %q", truncate(svc, 64)))
		return false
	}
	if isAdminPath(p) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("%s is an admin path of service %q and is not served through the gateway", path.Clean(p), svc))
		return false
	}
	if t.guarded[svc] {
		shoal.WriteError(w, http.StatusNotFound, "no_route",
			fmt.Sprintf("service %q is served only through its configured routes", svc))
		return false
	}
	if len(g.resolver.Instances(svc)) == 0 {
		if _, known := g.seen.Load(svc); known {
			// Scaled to zero or all down right now: try again, not "never".
			st.service = svc
			w.Header().Set("Retry-After", "1")
			shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", fmt.Sprintf("service %q has no instance available right now", svc))
			return false
		}
		shoal.WriteError(w, http.StatusNotFound, "unknown_service", fmt.Sprintf("no service named %q", svc))
		return false
	}
	if _, known := g.seen.Load(svc); !known {
		g.seen.Store(svc, struct{}{})
	}
	st.service, st.path, st.rawPath = svc, p, raw
	return true
}

// send applies the body limit, the deadline and the route's client policy,
// and forwards the request. orig is the server's own writer, so that
// net/http closes the connection after a body it will not read to the end.
func (g *Gateway) send(w http.ResponseWriter, r *http.Request, orig http.ResponseWriter, t *table, st *request) {
	rt := st.route
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
	st.limit, st.timeout = limit, timeout
	if r.ContentLength > limit {
		writeTooLarge(w, limit)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		st.trailer = r.Trailer
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(orig, r.Body, limit), st: st}
	}
	if err := bufferBody(r); err != nil {
		if tooLarge(err) {
			writeTooLarge(w, limit)
			return
		}
		w.Header().Set("Connection", "close") // the framing cannot be trusted any more
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
	ctx = g.assignCohort(ctx, st)
	g.forward(ctx, w, r, st)
}

// outgoingHeaders are the header rules of the request to the service, laid
// over the caller's end-to-end headers in h (hop-by-hop ones, including any
// the caller named in Connection, are gone by now: Connection:
// Shoal-Subject cannot drop the gateway's own). The forwarding headers say
// who called, from the connection (or the proxies the configuration
// trusts), never from what the caller claims.
func (g *Gateway) outgoingHeaders(h http.Header, r *http.Request, st *request) {
	delete(h, "Forwarded")
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Host")
	delete(h, "X-Forwarded-Proto")
	// The values live in st: one allocation for the request, not one per
	// field; each slice has capacity 1, so that Add copies.
	f := &st.forwarded
	if st.client != "" {
		f[0] = st.client
		h["X-Forwarded-For"] = f[0:1:1]
	}
	f[1], f[2] = r.Host, "http"
	if r.TLS != nil {
		f[2] = "https"
	}
	h["X-Forwarded-Host"] = f[1:2:2]
	h["X-Forwarded-Proto"] = f[2:3:3]
	if _, ok := r.Header["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // none: not Go's default
	}
	stripFields(h)
	stripFields(r.Trailer) // the names announced; limitedBody strips what arrives
	setIdentity(h, st.ident)
	if st.token[0] != "" {
		h[identity.UserTokenHeader] = st.token[:]
	}
	h[requestIDKey] = st.idv[:]
	// The trace context and baggage are the client transport's to set,
	// per attempt, from the context: the service's parent span is the
	// gateway's, not the caller's, and a caller naming traceparent in
	// Connection does not stop the trace.
}

// strippedFields are the fields a service never gets from the caller, in
// lower case: the credentials the gateway verifies (a service learns who
// the user is from the gateway's user token, and a credential it never
// holds cannot leak from it), the identity the gateway vouches for, and
// HTTP2-Settings, which belongs to an h2c upgrade, never forwarded.
var strippedFields = [...]string{"authorization", "x-api-key", "shoal-subject", "shoal-auth", "shoal-user-token", "http2-settings"}

// stripFields deletes h's fields named in strippedFields, however they are
// spelled: in any case, and with '_' for '-', since CGI, WSGI and Rack
// servers, and nginx with underscores_in_headers, read Shoal_Subject as
// Shoal-Subject. It does not allocate.
func stripFields(h http.Header) {
	for k := range h {
		for _, name := range &strippedFields {
			if len(k) == len(name) && sameFieldName(k, name) {
				delete(h, k)
				break
			}
		}
	}
}

// sameFieldName reports whether the field name k is lower (lower case,
// '-' separated, of k's length) read case-insensitively with '_' as '-'.
func sameFieldName(k, lower string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// forwardedUpgrade is the protocol upgrade the gateway passes on for a
// request: WebSocket only. Any other (h2c above all, which would turn the
// connection into an HTTP/2 tunnel to the service that no policy sees
// into) is dropped, and the service answers the request as it stands.
func forwardedUpgrade(h http.Header) string {
	if up := upgradeType(h); strings.EqualFold(up, "websocket") {
		return up
	}
	return ""
}

// gatewayAdminPath reports whether p (cleaned) is one of the gateway's own
// admin endpoints that tell outsiders how it runs, in any case, with or
// without a trailing slash. They are served on the admin listener, never
// routed: GET /metrics must not reach a service named "metrics".
func gatewayAdminPath(p string) bool {
	p = strings.TrimSuffix(p, "/")
	return strings.EqualFold(p, shoal.PathMetrics) || strings.EqualFold(p, shoal.PathInfo)
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

// limitedBody notes when the body limit stops a read, or the caller's body
// fails, so that the answer is 413 or 400 whatever error the transport
// makes of it.
type limitedBody struct {
	io.ReadCloser
	st *request
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		// The server has read the caller's trailers into the map the
		// outgoing request carries, and the transport writes them after
		// this read.
		stripFields(b.st.trailer)
	case tooLarge(err):
		b.st.tooLarge.Store(true)
	default:
		b.st.bodyErr.Store(&err)
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
