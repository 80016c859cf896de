package gateway

// Headers the gateway sets on every request: the verified identity and,
// for a request without one, a trace.

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// setIdentity tells the service who the caller is.
func setIdentity(h http.Header, id Identity) {
	if id.Subject != "" {
		h.Set(SubjectHeader, id.Subject)
	}
	if v := id.authHeader(); v != "" {
		h.Set(AuthHeader, v)
	}
}

// clientIP is the address the request came from (never a header the
// client could set).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newTrace returns ctx in a new trace, sampled, so that services which
// trace record it: a request that enters without a trace gets one, even
// when the gateway records no spans, so that the log lines of every
// service it reaches share a trace ID. IDs must be unique in practice, not
// unpredictable, so math/rand/v2 serves.
func newTrace(ctx context.Context) context.Context {
	var tid trace.TraceID
	var sid trace.SpanID
	binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64()|1) // never all zero
	binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1)
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
}

// wantsStream reports whether the request asks for a response that lasts
// as long as the caller wants: a WebSocket upgrade (the only one
// forwarded), or server-sent events (EventSource sends Accept:
// text/event-stream).
func wantsStream(h http.Header) bool {
	return h["Upgrade"] != nil && forwardedUpgrade(h) != "" || strings.Contains(headerValue(h, "Accept"), "text/event-stream")
}

// streaming reports whether resp is a stream: switched protocols or
// server-sent events.
func streaming(resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	return eventStream(resp.Header)
}

// eventStream reports whether a response's Content-Type is
// text/event-stream (server-sent events), parameters aside.
func eventStream(h http.Header) bool {
	mt, _, _ := strings.Cut(headerValue(h, "Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// headerValue is h.Get(k) for a canonical k, without canonicalising it
// again (a tenth of a microsecond each, many times a request).
func headerValue(h http.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
