package telemetry

import (
	"context"
	"math/rand/v2"
	"net/http"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/internal/statuswriter"
)

// serverSpan starts server spans; shared so that starting one allocates no
// option slice.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// Middleware returns next behind what makes a request traceable:
//
//   - its ID: the caller's X-Request-Id if sane (at most 128 printable
//     ASCII characters, one value), else a new one, set on the request's
//     header and the response's, and in the context (client.RequestID),
//     from which the calls the handler makes and its log lines (see
//     [NewLogHandler]) take it;
//   - its W3C trace context and baggage, from traceparent, tracestate and
//     baggage, in the context (client.Extract): the calls the handler makes
//     with it continue the trace, recorded here or not;
//   - a server span, child of the caller's, named "<METHOD> <route>" (the
//     route template the service's Router served it with, "GET
//     /titles/{id}"; "<METHOD> <path>" for a request no route served), with
//     http.request.method, url.path, http.route and
//     http.response.status_code (status
//     Error for a 5xx, or a handler that panicked; a 5xx to a caller that
//     had gone is recorded as [StatusClientClosed], no error) when t
//     records it.
//
// A nil or off t does the first two only. Mount it inside
// [Metrics.Middleware] to share its response writer; outside, or alone, it
// wraps the writer itself (only for a recorded span), keeping
// http.Flusher, http.Hijacker and io.ReaderFrom.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Serve(w, r, next) })
}

// Serve is Middleware(next).ServeHTTP(w, r), for a handler that decides per
// request whether it needs it (the gateway, when no SDK server did it).
func (t *Tracing) Serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ctx := Incoming(w, r)
	if t == nil || t.tracer == nil {
		next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	// Named by method only until it ends: the full name allocates, and
	// the route that names it is known only once the handler ran.
	ctx, span := t.tracer.Start(ctx, r.Method, serverSpan...)
	if !span.IsRecording() {
		next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	sw, ok := w.(*statuswriter.Writer)
	if !ok {
		sw = &statuswriter.Writer{ResponseWriter: w}
		w = sw
	}
	finished := false
	defer func() {
		code := sw.Status()
		if !finished {
			code = http.StatusInternalServerError // the handler panicked
		} else {
			code = Recorded(r, code)
		}
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path),
			semconv.HTTPResponseStatusCode(code))
		name := r.URL.Path
		if sw.Route != "" {
			// OpenTelemetry's name for a server span: low cardinality,
			// the same for every title's page.
			name = sw.Route
			span.SetAttributes(semconv.HTTPRoute(sw.Route))
		}
		span.SetName(r.Method + " " + name)
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		span.End()
	}()
	next.ServeHTTP(w, r.WithContext(ctx))
	finished = true
}

// Incoming returns r's context with what [Tracing.Middleware] takes in
// before any span: r's request ID (a new one, set on r's header, when the
// caller's is missing or not sane; on w's header either way) and its W3C
// trace context and baggage. For a handler served without the middleware
// (the gateway under a server of the caller's).
func Incoming(w http.ResponseWriter, r *http.Request) context.Context {
	ids := r.Header[client.RequestIDHeader]
	var id string
	if len(ids) == 1 && saneRequestID(ids[0]) {
		id = ids[0]
	} else {
		id = newRequestID()
		ids = []string{id}
		r.Header[client.RequestIDHeader] = ids
	}
	w.Header()[client.RequestIDHeader] = ids
	return client.WithRequestID(client.Extract(r.Context(), r.Header), id)
}

// saneRequestID reports whether a caller's request ID may be kept: it ends
// up in logs and headers.
func saneRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// newRequestID returns 16 hex digits. A request ID correlates logs: it
// must be unique in practice, not unpredictable, so math/rand/v2 serves,
// without the system call crypto/rand may make on every request.
func newRequestID() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	v := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}
