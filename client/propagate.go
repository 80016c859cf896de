package client

import (
	"context"
	"encoding/hex"
	"net/http"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
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
// baggage, and the request ID of ctx if h has none. With slot, storage of
// the call's, the traceparent value is made there, which saves the first
// attempt its allocations. root is the trace context to carry when ctx has
// none: that of a trace the call started without a span (see startSpan).
//
// It writes what propagator.Inject writes (TestInjectIsThePropagators),
// without its detours: every call pays for it, sampled or not, and the
// propagators' carrier interface, string builder and four context lookups
// were most of an unsampled call's tracing time.
func inject(ctx context.Context, h http.Header, slot *traceparentSlot, root trace.SpanContext) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		sc = root
	}
	if sc.IsValid() {
		delete(h, tracestateHeader)
		if ts := sc.TraceState().String(); ts != "" {
			h[tracestateHeader] = []string{ts}
		}
		if slot == nil {
			slot = new(traceparentSlot)
		}
		h[traceparentHeader] = slot.set(sc)
	}
	if b := baggage.FromContext(ctx); b.Len() > 0 {
		h[baggageHeader] = []string{b.String()}
	}
	if _, ok := h[RequestIDHeader]; !ok {
		if id := RequestID(ctx); id != "" {
			h[RequestIDHeader] = []string{id}
		}
	}
}

// traceparentSlot holds a traceparent header value and the bytes it is
// made of. It is set once: the string shares its bytes.
type traceparentSlot struct {
	val [1]string
	buf [55]byte // 00-<32 hex trace ID>-<16 hex span ID>-<2 hex flags>
}

// set formats sc into s as a W3C traceparent value, version 00, with the
// flags the specification defines (sampled, random), and returns it as a
// header value. Called once per slot.
func (s *traceparentSlot) set(sc trace.SpanContext) []string {
	const digits = "0123456789abcdef"
	b := &s.buf
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	hex.Encode(b[3:35], tid[:])
	hex.Encode(b[36:52], sid[:])
	f := sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom)
	b[53], b[54] = digits[f>>4], digits[f&0xf]
	// The bytes are not written again: the slot is set once, and lives as
	// long as the string does (the string points into it).
	s.val[0] = unsafe.String(&b[0], len(b))
	return s.val[:]
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
