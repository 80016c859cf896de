package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/balance"
)

// Spans. A call is one client span, named "<METHOD> <service>"; it carries
// the attributes of its first attempt, so that the common call, answered by
// its first attempt, costs one span. Each further attempt (a retry, a
// hedge) is a client span of its own under the call's, with the same name.
// The callee's server span is the child of the span whose context the
// attempt carried: the call's for the first attempt, the attempt's for the
// others, so the tree is right whichever attempt answered.
//
// Attributes, all set as the span ends, and only when it is recorded:
//
//   - service.peer.name: the service called; http.request.method on the
//     call's span; http.response.status_code of the answer used;
//   - shoal.attempt (1 for the first), shoal.attempt.reason ("first",
//     "retry: <why the previous attempt failed>", "hedge"), shoal.instance
//     (the instance tried), shoal.outcome (see outcomeOf), shoal.breaker
//     (the instance's breaker after the attempt: closed, open or
//     half_open), http.request.resend_count for the others;
//   - shoal.attempts on a call that made more than one.
//
// No more than 8 on a span of one attempt: the SDK de-duplicates a span's
// attributes as it ends, with a map that costs three allocations beyond 8.
// The path and the instance's address are the callee's to record.
//
// A span's status is Error for a call without an answer, a 5xx answer, or
// a failed attempt (a 4xx is an answer, and the caller's business).
const (
	attrAttempt   = attribute.Key("shoal.attempt")
	attrReason    = attribute.Key("shoal.attempt.reason")
	attrInstance  = attribute.Key("shoal.instance")
	attrOutcome   = attribute.Key("shoal.outcome")
	attrBreaker   = attribute.Key("shoal.breaker")
	attrAttempts  = attribute.Key("shoal.attempts")
	attrFallback  = attribute.Key("shoal.fallback")
	reasonFirst   = "first"
	reasonHedge   = "hedge"
	reasonRetry   = "retry: "
	tracerScope   = "github.com/shoal-dev/shoal/client"
	maxCallAttrs  = 9 // what a call span sets at most
	maxCauseBytes = 160
)

// clientSpan starts client spans; shared so that starting one allocates no
// option slice.
var clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

// attrPool lends the attribute slices spans are ended with: SetAttributes
// copies them.
var attrPool = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, maxCallAttrs); return &s }}

// callTrace is the tracing state of a call: nil span when the call is not
// recorded (the Transport does not trace, or the trace is not sampled).
type callTrace struct {
	span   trace.Span
	root   trace.SpanContext // a trace the call started, not sampled (see startSpan)
	method string
	first  attemptNote // the first attempt's, carried by the call's span
	cause  string      // outcome of the last failed attempt: why the next is a retry
	status int         // of the answer used; 0 if none
	err    error       // why the call ended without an answer
}

// attemptNote is what a span says about one attempt.
type attemptNote struct {
	instance, outcome, breaker string
}

// traces reports whether a call with ctx may be recorded: t traces, and
// ctx's span, if any, is sampled. A call under a span that is not sampled
// starts no span of its own, and its attempts carry that span's context
// as it is: with parent-based sampling (the default, and every
// parentbased_* OTEL_TRACES_SAMPLER) the call's span would not be sampled
// either, and with a trace-ID ratio it would get the same answer as its
// parent; asking the SDK only to make an unrecorded span would cost the
// unsampled call two allocations and most of its tracing time.
// It also returns ctx's span context (the call's parent; not valid if none).
func (t *Transport) traces(ctx context.Context) (trace.SpanContext, bool) {
	if t.tracer == nil {
		return trace.SpanContext{}, false
	}
	sc := trace.SpanContextFromContext(ctx)
	return sc, !sc.IsValid() || sc.IsSampled()
}

// startSpan starts the span of call c, if t traces (see traces), and
// returns ctx with it: the first attempt carries its context. A call that
// starts a trace which is not sampled makes no span when t knows the
// sampler (see TracerProvider): c.trace.root holds the new trace's context
// for its attempts to carry. Otherwise the unsampled span the SDK makes is
// left in ctx for that, and c keeps none.
func (t *Transport) startSpan(ctx context.Context, c *call, req *http.Request) context.Context {
	parent, ok := t.traces(ctx)
	if !ok {
		return ctx
	}
	name := c.dep.spanName(req.Method)
	if t.sampler != nil && !parent.IsValid() {
		var sampled bool
		if ctx, c.trace.root, sampled = decideRoot(ctx, t.sampler, name); !sampled {
			return ctx
		}
	}
	ctx, span := t.tracer.Start(ctx, name, clientSpan...)
	if span.IsRecording() {
		c.trace.span, c.trace.method = span, req.Method
	}
	return ctx
}

// endSpan ends the call's span with what the call did. Called once, by
// release.
func (c *call) endSpan(service string) {
	tr := &c.trace
	span := tr.span
	if span == nil {
		return
	}
	tr.span = nil
	p := attrPool.Get().(*[]attribute.KeyValue)
	attrs := append((*p)[:0],
		semconv.ServicePeerName(service), semconv.HTTPRequestMethodKey.String(tr.method))
	if f := &tr.first; f.instance != "" {
		attrs = append(attrs, attrAttempt.Int(1), attrReason.String(reasonFirst), attrInstance.String(f.instance),
			attrOutcome.String(f.outcome), attrBreaker.String(f.breaker))
	}
	if c.n > 1 {
		attrs = append(attrs, attrAttempts.Int(c.n))
	}
	if tr.status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(tr.status))
	}
	span.SetAttributes(attrs...)
	*p = attrs
	attrPool.Put(p)
	switch {
	case tr.err != nil:
		span.SetStatus(codes.Error, tr.err.Error())
	case tr.status >= 500:
		span.SetStatus(codes.Error, http.StatusText(tr.status))
	}
	span.End()
}

// failedSpan records, if t traces, a call that ended before it was
// admitted: no instance known, caller already gone, throttled, bulkhead
// full. A call whose caller was gone has the outcome canceled, as one
// canceled on its way.
func (t *Transport) failedSpan(ctx context.Context, service string, req *http.Request, err error) {
	if _, ok := t.traces(ctx); !ok {
		return
	}
	_, span := t.tracer.Start(ctx, req.Method+" "+service, clientSpan...)
	if span.IsRecording() {
		span.SetAttributes(semconv.ServicePeerName(service), semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLPath(req.URL.Path))
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			// Whatever the cause: as outcomeOf, only a deadline fails.
			span.SetAttributes(attrOutcome.String("canceled"))
		}
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startAttempt starts the span of attempt n > 0 of a recorded call
// (traced) to dep, and returns actx with it; the first attempt has the
// call's span.
func (t *Transport) startAttempt(actx context.Context, dep *dependency, method string, n int, traced bool) (context.Context, trace.Span) {
	if n == 0 || !traced {
		return actx, nil
	}
	return t.tracer.Start(actx, dep.spanName(method), clientSpan...)
}

// endAttempt notes how attempt n on h went, for a recorded call: on the
// call's span for the first (c.trace.first, read as the call ends; the
// call's goroutine runs the first attempt), on span, which it ends, for
// the others. reason is reasonHedge for a hedge, which runs on a goroutine
// of its own and so reads nothing else of c; "" for a retry.
func (c *call) endAttempt(span trace.Span, service string, n int, reason string, h *balance.Host, a *Attempt, f failure, resp *http.Response) {
	note := attemptNote{instance: a.Instance, outcome: outcomeOf(f, a.Err, resp), breaker: h.Breaker()}
	if n == 0 {
		c.trace.first = note
		return
	}
	if reason == "" {
		reason = reasonRetry + c.trace.cause
	}
	p := attrPool.Get().(*[]attribute.KeyValue)
	attrs := append((*p)[:0], semconv.ServicePeerName(service), attrAttempt.Int(n+1), attrReason.String(reason),
		attrInstance.String(note.instance), attrOutcome.String(note.outcome), attrBreaker.String(note.breaker),
		semconv.HTTPRequestResendCount(n))
	if resp != nil {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
	span.SetAttributes(attrs...)
	*p = attrs
	attrPool.Put(p)
	if f != noFailure && f != hedgeLost {
		span.SetStatus(codes.Error, a.Err.Error())
	}
	span.End()
}

// failedAttempt notes, for a recorded call, why an attempt failed: the
// reason of the retry that follows.
func (c *call) failedAttempt(f failure, a *Attempt, resp *http.Response) {
	if c.trace.span != nil {
		c.trace.cause = outcomeOf(f, a.Err, resp)
	}
}

// outcomeOf names how an attempt ended: ok (an answer, 4xx included),
// error (a 500 or 501 answer, final), 502/503/504 (a gateway error, tried
// elsewhere when the rules allow), rejected (refused unprocessed by the
// instance's admission control), refused (connection refused), not sent
// (no connection, or timed out before the request was written), broken
// (connection broken after sending), timeout (the per-try timeout), silent
// (a frozen instance: see ErrInstanceSilent), outrun (another attempt of
// the call answered first), deadline or canceled (the caller's).
func outcomeOf(f failure, err error, resp *http.Response) string {
	switch f {
	case noFailure:
		if resp != nil && resp.StatusCode >= 500 {
			return "error"
		}
		return "ok"
	case badGateway:
		var se *StatusError
		if errors.As(err, &se) {
			switch se.Code {
			case http.StatusBadGateway:
				return "502"
			case http.StatusServiceUnavailable:
				return "503"
			}
		}
		return "504"
	case notSent:
		var se *StatusError
		switch {
		case errors.As(err, &se):
			return "rejected"
		case errors.Is(err, syscall.ECONNREFUSED):
			return "refused"
		}
		return "not sent"
	case broken:
		return "broken"
	case timedOut:
		if errors.Is(err, ErrInstanceSilent) {
			return "silent"
		}
		return "timeout"
	case hedgeLost:
		return "outrun"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline"
	}
	return "canceled"
}

// spanName is the name of the spans of calls to d with method.
func (d *dependency) spanName(method string) string {
	switch method {
	case "", http.MethodGet:
		return d.spanNames[0]
	case http.MethodPost:
		return d.spanNames[1]
	case http.MethodPut:
		return d.spanNames[2]
	case http.MethodDelete:
		return d.spanNames[3]
	}
	return method + " " + d.name
}

// newSpanNames returns the span names spanName keeps for service.
func newSpanNames(service string) [4]string {
	return [4]string{"GET " + service, "POST " + service, "PUT " + service, "DELETE " + service}
}

// fallbackCause says briefly why a call fell back, for the span of the
// fallback: the service and the reason when the error is a call's.
func fallbackCause(err error) string {
	cause := err.Error()
	var ce *Error
	if errors.As(err, &ce) && ce.Err != nil {
		cause = ce.Service + ": " + ce.Err.Error()
	}
	if len(cause) > maxCauseBytes {
		cause = strings.ToValidUTF8(cause[:maxCauseBytes], "") + "…"
	}
	return cause
}
