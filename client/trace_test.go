package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/resilience"
)

// seen is what an instance received of a call: the trace context it
// continues, the baggage and the request ID.
type seen struct {
	mu   sync.Mutex
	reqs []seenReq
}

type seenReq struct {
	sc        trace.SpanContext
	baggage   string
	requestID string
}

func (s *seen) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(Extract(context.Background(), r.Header))
		s.mu.Lock()
		s.reqs = append(s.reqs, seenReq{sc: sc, baggage: r.Header.Get("Baggage"), requestID: r.Header.Get(RequestIDHeader)})
		s.mu.Unlock()
		h(w, r)
	}
}

func (s *seen) all() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.reqs...)
}

// recorder returns a provider that samples with sampler (parent-based)
// and records the spans that end: a TracerProvider, as the SDK's services
// use.
func recorder(sampler sdktrace.Sampler) (*TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return NewTracerProvider(sdktrace.ParentBased(sampler), sdktrace.WithSpanProcessor(rec)), rec
}

// sdkRecorder is recorder with the SDK's own provider, whose sampler a
// Transport does not know.
func sdkRecorder(sampler sdktrace.Sampler) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sampler)), sdktrace.WithSpanProcessor(rec)), rec
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// remoteParent is the context of a request whose caller sent traceparent
// tp.
func remoteParent(tp string) context.Context {
	return Extract(context.Background(), http.Header{"Traceparent": {tp}})
}

const callerTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestTraceContextPropagates(t *testing.T) {
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler // nil: the Transport does not trace
		ctx     context.Context
		header  string // traceparent the request itself carries
		// What the instance must see: the caller's trace (or a new one if
		// newTrace), parented by the call's span if spans, sampled or not.
		newTrace, spans, sampled bool
		parent                   string // the parent span ID the instance sees, when no span
	}{
		{name: "sampled", sampler: sdktrace.AlwaysSample(), ctx: remoteParent(callerTraceparent), spans: true, sampled: true},
		{name: "new trace", sampler: sdktrace.AlwaysSample(), ctx: context.Background(), newTrace: true, spans: true, sampled: true},
		{name: "unsampled", sampler: sdktrace.NeverSample(), ctx: context.Background(), newTrace: true},
		{name: "caller unsampled", sampler: sdktrace.AlwaysSample(), ctx: remoteParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"), parent: "b7ad6b7169203331"},
		{name: "not tracing, remote parent", ctx: remoteParent(callerTraceparent), sampled: true, parent: "b7ad6b7169203331"},
		{name: "not tracing, request's own traceparent", ctx: context.Background(), header: callerTraceparent, sampled: true, parent: "b7ad6b7169203331"},
	} {
		for _, sdk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sdk-provider=%v", tc.name, sdk), func(t *testing.T) {
				var s seen
				f := newFleet(t, s.wrap(ok))
				cfg := Config{}
				var rec *tracetest.SpanRecorder
				switch {
				case tc.sampler == nil:
				case sdk:
					cfg.TracerProvider, rec = sdkRecorder(tc.sampler)
				default:
					cfg.TracerProvider, rec = recorder(tc.sampler)
				}
				tr := newTransport(t, f, cfg)
				ctx := WithRequestID(baggage.ContextWithBaggage(tc.ctx, bag), "req-1")
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
				if tc.header != "" {
					req.Header.Set("Traceparent", tc.header)
				}
				roundTrip(t, tr, req)

				got := s.all()
				if len(got) != 1 {
					t.Fatalf("%d requests, want 1", len(got))
				}
				in := got[0]
				if in.baggage != "tenant=acme" || in.requestID != "req-1" {
					t.Errorf("baggage %q, request ID %q; want tenant=acme, req-1", in.baggage, in.requestID)
				}
				if !in.sc.IsValid() {
					t.Fatalf("the instance got no valid trace context")
				}
				if caller := "0af7651916cd43dd8448eb211c80319c"; (in.sc.TraceID().String() == caller) == tc.newTrace {
					t.Errorf("trace ID %s, caller's %s, want a new trace: %v", in.sc.TraceID(), caller, tc.newTrace)
				}
				if in.sc.IsSampled() != tc.sampled {
					t.Errorf("sampled %v, want %v", in.sc.IsSampled(), tc.sampled)
				}
				var spans []sdktrace.ReadOnlySpan
				if rec != nil {
					spans = rec.Ended()
				}
				switch {
				case tc.spans:
					if len(spans) != 1 {
						t.Fatalf("%d spans, want 1", len(spans))
					}
					if in.sc.SpanID() != spans[0].SpanContext().SpanID() {
						t.Errorf("the instance's parent is %s, not the call's span %s", in.sc.SpanID(), spans[0].SpanContext().SpanID())
					}
				case len(spans) != 0:
					t.Errorf("%d spans recorded, want none", len(spans))
				case tc.parent != "" && in.sc.SpanID().String() != tc.parent:
					t.Errorf("parent %s, want the caller's %s passed on", in.sc.SpanID(), tc.parent)
				}
			})
		}
	}
}

// TestRequestIDOfRequestWins: a request that sets X-Request-Id keeps it.
func TestRequestIDOfRequestWins(t *testing.T) {
	var s seen
	tr := newTransport(t, newFleet(t, s.wrap(ok)), Config{})
	req, _ := http.NewRequestWithContext(WithRequestID(context.Background(), "ctx-id"), "GET", "http://svc/x", nil)
	req.Header.Set(RequestIDHeader, "own-id")
	roundTrip(t, tr, req)
	if got := s.all()[0].requestID; got != "own-id" {
		t.Fatalf("request ID %q, want own-id", got)
	}
}

func TestSpanOfOneAttempt(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	f := newFleet(t, status(http.StatusInternalServerError))
	tr := newTransport(t, f, Config{TracerProvider: tp})
	resp, _, err := get(t, tr.Client(), "http://svc/x/1")
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("%v %v", resp, err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	want := map[attribute.Key]string{
		"service.peer.name": "svc", "http.request.method": "GET", "http.response.status_code": "500",
		attrAttempt: "1", attrReason: "first", attrInstance: "svc-0", attrOutcome: "error", attrBreaker: "closed",
	}
	got := attrsOf(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v, want only %v", got, want)
	}
	if s.Name() != "GET svc" || s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Error {
		t.Errorf("span %q kind %v status %v, want GET svc, client, error", s.Name(), s.SpanKind(), s.Status())
	}
}

// TestSpansOfRetry: the call's span carries the first attempt, a retry
// has a span of its own under it, and each instance continues the span
// of the attempt it served.
func TestSpansOfRetry(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	var s seen
	var hits atomic.Int64
	h := s.wrap(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	f := newFleet(t, h, h)
	tr := newTransport(t, f, Config{TracerProvider: tp})
	resp, body, err := get(t, tr.Client(), "http://svc/x")
	if err != nil || body != "ok" {
		t.Fatalf("%v %q %v", resp, body, err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (the call, the retry)", len(spans))
	}
	retry, call := spans[0], spans[1] // the retry ends first
	if retry.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Fatalf("the retry's parent is %s, not the call %s", retry.Parent().SpanID(), call.SpanContext().SpanID())
	}
	ca, ra := attrsOf(call), attrsOf(retry)
	if ca[attrAttempt] != "1" || ca[attrOutcome] != "503" || ca[attrAttempts] != "2" || ca["http.response.status_code"] != "200" {
		t.Errorf("call: %v", ca)
	}
	if ra[attrAttempt] != "2" || ra[attrReason] != "retry: 503" || ra[attrOutcome] != "ok" || ra["service.peer.name"] != "svc" ||
		ra["http.request.resend_count"] != "1" || ra[attrInstance] == ca[attrInstance] {
		t.Errorf("retry: %v (call's instance %s)", ra, ca[attrInstance])
	}
	if call.Status().Code == codes.Error || retry.Status().Code == codes.Error {
		t.Errorf("status: call %v, retry %v; want both unset", call.Status(), retry.Status())
	}
	in := s.all()
	if len(in) != 2 || in[0].sc.SpanID() != call.SpanContext().SpanID() || in[1].sc.SpanID() != retry.SpanContext().SpanID() {
		t.Errorf("the instances continued %v, want the call's span, then the retry's", in)
	}
}

// TestSpansOfHedge: a hedge is a span of its own, marked as one, and the
// first attempt it outran says so.
func TestSpansOfHedge(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	var slowOnce atomic.Bool
	h := func(w http.ResponseWriter, r *http.Request) {
		if slowOnce.CompareAndSwap(true, false) {
			<-r.Context().Done()
			return
		}
		ok(w, r)
	}
	tr := hedgeWhenSlow(t, tp, h)
	before := len(rec.Ended())
	slowOnce.Store(true)
	if _, body, err := get(t, tr.Client(), "http://svc/x"); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
	spans := rec.Ended()[before:]
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (the call, the hedge)", len(spans))
	}
	hedge, call := spans[0], spans[1]
	ca, ha := attrsOf(call), attrsOf(hedge)
	if hedge.Parent().SpanID() != call.SpanContext().SpanID() {
		t.Errorf("the hedge's parent is %s, not the call %s", hedge.Parent().SpanID(), call.SpanContext().SpanID())
	}
	if ca[attrOutcome] != "outrun" || ca[attrAttempts] != "2" {
		t.Errorf("call: %v", ca)
	}
	if ha[attrAttempt] != "2" || ha[attrReason] != "hedge" || ha[attrOutcome] != "ok" || ha[attrInstance] == ca[attrInstance] {
		t.Errorf("hedge: %v (call's instance %s)", ha, ca[attrInstance])
	}
}

// hedgeWhenSlow returns a transport over two instances serving h that
// hedges any call slower than 5 ms, once it has the latency samples for it.
func hedgeWhenSlow(t *testing.T, tp trace.TracerProvider, h http.HandlerFunc) *Transport {
	t.Helper()
	f := newFleet(t, h, h)
	tr := newTransport(t, f, Config{TracerProvider: tp, Hedge: resilience.HedgeConfig{
		Percentile: 0.5, MinSamples: 5, MinDelay: 5 * time.Millisecond, MaxExtra: 1,
	}})
	for range 20 { // latency samples for the hedge delay
		if _, _, err := get(t, tr.Client(), "http://svc/x"); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// TestSpansOfHedgeOutrun: a hedge the first attempt outruns is canceled,
// which is no failure: its span says "outrun" and is not an error, so
// that a call answered in time does not make its trace a failed one.
func TestSpansOfHedgeOutrun(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	var race atomic.Int32 // 2: the next request answers once another is in, which never answers
	second := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		switch race.Add(-1) {
		case 1: // slow past the hedge delay: the hedge is sent, and outrun
			select {
			case <-second:
			case <-time.After(10 * time.Second): // no hedge: the test fails below
			}
		case 0:
			close(second)
			<-r.Context().Done() // answers nothing until canceled
			return
		}
		ok(w, r)
	}
	tr := hedgeWhenSlow(t, tp, h)
	before := len(rec.Ended())
	race.Store(2)
	if _, body, err := get(t, tr.Client(), "http://svc/x"); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
	var spans []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); len(spans) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling: the loser's span ends on its own goroutine
		spans = rec.Ended()[before:]
	}
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (the call, the hedge)", len(spans))
	}
	// Which one the instances saw first is the scheduler's business: one
	// attempt answered, the other was outrun, and neither is an error.
	won, lost := spans[0], spans[1]
	if attrsOf(won)[attrOutcome] != "ok" {
		won, lost = lost, won
	}
	if wa, la := attrsOf(won), attrsOf(lost); wa[attrOutcome] != "ok" || la[attrOutcome] != "outrun" ||
		won.Status().Code == codes.Error || lost.Status().Code == codes.Error || wa[attrReason] == la[attrReason] {
		t.Errorf("spans %v (status %v) and %v (status %v); want one answered, one outrun (first and hedge), no error",
			wa, won.Status(), la, lost.Status())
	}
}

// TestSpanOfCallNotMade: a call refused before any attempt is a failed
// span too.
func TestSpanOfCallNotMade(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	tr := newTransport(t, resolverFunc(func(string) []discovery.Instance { return nil }), Config{TracerProvider: tp})
	_, err := tr.Client().Get("http://ghost/x")
	if !errors.Is(err, ErrNoInstances) {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "GET ghost" || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans %v, want one failed GET ghost", spans)
	}
	if a := attrsOf(spans[0]); a["service.peer.name"] != "ghost" {
		t.Errorf("attributes %v", a)
	}
}

// TestSpanOfCallCallerGone: a call whose caller is already gone is a
// failed span whose outcome says canceled, as for a call canceled on its
// way (the dashboard does not count it as a failure).
func TestSpanOfCallCallerGone(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	tr := newTransport(t, newFleet(t, ok), Config{TracerProvider: tp})
	gone := errors.New("the client hung up") // a cause of the caller's own, as the gateway's engine gives
	for _, cause := range []error{nil, gone} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Cause(ctx)) {
			t.Fatal(err)
		}
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, sp := range spans {
		if sp.Status().Code != codes.Error || attrsOf(sp)[attrOutcome] != "canceled" {
			t.Errorf("span %v, want a failed GET svc, outcome canceled", sp)
		}
	}
}

// TestSpanOfFallback: a fallback used under a recorded span is a span,
// with the failed call as its cause; under none, nothing is recorded.
func TestSpanOfFallback(t *testing.T) {
	tp, rec := recorder(sdktrace.AlwaysSample())
	failing := func(context.Context) (string, error) {
		return "", &Error{Service: "ratings", Err: ErrNoInstances}
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "GET /home")
	v, degraded := Fallback(ctx, time.Second, failing, func(error) string { return "popular" })
	parent.End()
	if v != "popular" || !degraded {
		t.Fatalf("%q %v", v, degraded)
	}
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "fallback" || spans[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v, want a fallback under the parent", spans)
	}
	if got := attrsOf(spans[0])[attrFallback]; got != "ratings: "+ErrNoInstances.Error() {
		t.Errorf("%s = %q", attrFallback, got)
	}

	Fallback(context.Background(), time.Second, failing, nil)
	if n := len(rec.Ended()); n != 2 {
		t.Errorf("%d spans after a fallback outside any span, want still 2", n)
	}
}
