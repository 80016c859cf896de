package client

import (
	"context"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestRootDecidedByTransport: through a TracerProvider, calls that start
// traces sampled at a ratio of one half are sampled at that ratio (the
// SDK starts a sampled call's span with the IDs it was decided with, not
// new ones it would decide again); the instance continues the call's span
// when it is sampled, and an unsampled trace with no span otherwise.
func TestRootDecidedByTransport(t *testing.T) {
	const calls = 400
	var s seen
	tp, rec := recorder(sdktrace.TraceIDRatioBased(0.5))
	tr := newTransport(t, newFleet(t, s.wrap(ok)), Config{TracerProvider: tp})
	for range calls {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://svc/x", nil)
		roundTrip(t, tr, req)
	}
	spans := map[trace.SpanID]trace.TraceID{}
	for _, sp := range rec.Ended() {
		spans[sp.SpanContext().SpanID()] = sp.SpanContext().TraceID()
	}
	sampled := 0
	for _, in := range s.all() {
		if !in.sc.IsValid() {
			t.Fatalf("the instance got no valid trace context: %v", in.sc)
		}
		tid, recorded := spans[in.sc.SpanID()]
		switch {
		case in.sc.IsSampled() && (!recorded || tid != in.sc.TraceID()):
			t.Errorf("sampled trace %s: its parent %s is not a recorded span of it", in.sc.TraceID(), in.sc.SpanID())
		case !in.sc.IsSampled() && recorded:
			t.Errorf("unsampled trace %s: its parent %s was recorded", in.sc.TraceID(), in.sc.SpanID())
		}
		if in.sc.IsSampled() {
			sampled++
		}
	}
	// 200 ± 10 expected; deciding twice on two trace IDs would give 100.
	if sampled < calls*35/100 || sampled > calls*65/100 || len(spans) != sampled {
		t.Errorf("%d of %d calls sampled, %d spans recorded; want about half, one span each", sampled, calls, len(spans))
	}
}

// TestRootIDsTakenOnce: the SDK starts the span decideRoot sampled with the
// IDs it decided on, and a further new trace from the same context gets
// new ones.
func TestRootIDsTakenOnce(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := NewTracerProvider(sdktrace.AlwaysSample(), sdktrace.WithSpanProcessor(rec))
	ctx, _, sampled := decideRoot(context.Background(), tp.sampler, "GET svc")
	if !sampled {
		t.Fatal("always-sample decided against sampling")
	}
	ids := ctx.(*idsCtx)
	ctx, span := tp.Tracer("t").Start(ctx, "GET svc")
	span.End()
	if sc := span.SpanContext(); sc.TraceID() != ids.tid || sc.SpanID() != ids.sid {
		t.Errorf("span %s/%s, want the decided %s/%s", sc.TraceID(), sc.SpanID(), ids.tid, ids.sid)
	}
	_, again := tp.Tracer("t").Start(ctx, "other", trace.WithNewRoot())
	again.End()
	if again.SpanContext().TraceID() == ids.tid {
		t.Errorf("a second new trace took the decided trace ID %s again", ids.tid)
	}
}

// TestUnsampledRootAllocatesNothing: a call that starts a trace which is
// not sampled costs no allocation over a call that is not traced at all,
// through a TracerProvider (the SDK's own provider makes an unrecorded
// span and its context: two).
func TestUnsampledRootAllocatesNothing(t *testing.T) {
	call := func(rt http.RoundTripper) float64 {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://svc/x", nil)
		return testing.AllocsPerRun(200, func() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
	off := call(fakeShoal(t, 1, nil))
	root := call(fakeShoal(t, 1, benchProvider(t, sdktrace.NeverSample())))
	if root > off {
		t.Errorf("an unsampled root call allocates %.1f times, an untraced one %.1f", root, off)
	}
}
