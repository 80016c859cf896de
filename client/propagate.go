package client

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries a request's ID from caller to callee and back,
// to correlate their logs.
const RequestIDHeader = "X-Request-Id"

// The W3C Trace Context and Baggage headers, canonical.
const (
	traceparentHeader = "Traceparent"
	tracestateHeader  = "Tracestate"
	baggageHeader     = "Baggage"
)

// propagator reads and writes the W3C traceparent, tracestate and baggage
// headers: the wire convention between Shoal services, so not
// configurable (OTEL_PROPAGATORS is not read).
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Propagator returns the propagator of the headers a Transport sends: W3C
// traceparent, tracestate and baggage.
func Propagator() propagation.TextMapPropagator { return propagator }

// WithRequestID returns a context whose calls through a Transport carry id
// in RequestIDHeader (unless the request sets one itself). The SDK's
// server puts the ID of the request it serves there, so that the calls a
// handler makes with its request's context carry it on.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestIDCtx{Context: ctx, id: id}
}

// RequestID returns the request ID of ctx; "" if none.
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*requestIDCtx); ok {
		return c.id
	}
	return ""
}

type requestIDKey struct{}

// requestIDCtx is context.WithValue(ctx, requestIDKey{}, id) in one
// allocation rather than two (the value context, and the string boxed in
// an interface): every request served takes one. Its value is itself, so
// that reading the ID boxes nothing either.
type requestIDCtx struct {
	context.Context
	id string
}

func (c *requestIDCtx) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// Extract returns ctx with the W3C trace context and baggage that the
// headers h of an incoming request carry, as a remote parent span: the
// server side of what a Transport sends. Headers that are missing or not
// valid leave ctx as it is.
func Extract(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, headerCarrier(h))
}

// inject sets on h, the header of an outgoing attempt, what the callee
// needs to continue the caller's trace and logs: the trace context of ctx
// (replacing any the request had, whose parent would be wrong now) and its
// baggage, and the request ID of ctx if h has none. With sc, storage of the
// call's, the traceparent value is kept there, which saves the first
// attempt an allocation.
func inject(ctx context.Context, h http.Header, sc *slotCarrier) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		delete(h, traceparentHeader)
		delete(h, tracestateHeader)
	}
	if sc == nil {
		propagator.Inject(ctx, headerCarrier(h))
	} else {
		sc.h = h
		propagator.Inject(ctx, sc)
		sc.h = nil
	}
	if _, ok := h[RequestIDHeader]; !ok {
		if id := RequestID(ctx); id != "" {
			h[RequestIDHeader] = []string{id}
		}
	}
}

// slotCarrier is headerCarrier keeping the traceparent value in slot.
type slotCarrier struct {
	h    http.Header
	slot [1]string
}

func (c *slotCarrier) Get(key string) string { return headerCarrier(c.h).Get(key) }
func (c *slotCarrier) Keys() []string        { return headerCarrier(c.h).Keys() }

func (c *slotCarrier) Set(key, value string) {
	if k := canonical(key); k == traceparentHeader {
		c.slot[0] = value
		c.h[k] = c.slot[:]
	} else {
		c.h[k] = []string{value}
	}
}

// headerCarrier is propagation.HeaderCarrier for headers that are
// canonical already: the propagators ask for lower-case names, which
// http.Header would canonicalize on every call, allocating each time.
type headerCarrier http.Header

func canonical(key string) string {
	switch key {
	case "traceparent":
		return traceparentHeader
	case "tracestate":
		return tracestateHeader
	case "baggage":
		return baggageHeader
	}
	return http.CanonicalHeaderKey(key)
}

func (c headerCarrier) Get(key string) string {
	if v := c[canonical(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[canonical(key)] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
