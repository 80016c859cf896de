package client

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// TestInjectIsThePropagators: inject writes the headers the W3C
// propagators write, for every flag, with and without tracestate and
// baggage, over a request that carried stale ones of its own.
func TestInjectIsThePropagators(t *testing.T) {
	state, err := trace.ParseTraceState("vendor=a,other=b")
	if err != nil {
		t.Fatal(err)
	}
	member, err := baggage.NewMember("user", "u1")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	base := trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	}
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsRandom, trace.FlagsSampled | trace.FlagsRandom, 0xff} {
		for _, ts := range []trace.TraceState{{}, state} {
			for _, withBag := range []bool{false, true} {
				cfg := base
				cfg.TraceFlags, cfg.TraceState = flags, ts
				ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
				if withBag {
					ctx = baggage.ContextWithBaggage(ctx, bag)
				}
				stale := func() http.Header {
					return http.Header{traceparentHeader: {"00-stale"}, tracestateHeader: {"stale=1"}, "Accept": {"*/*"}}
				}
				want := stale()
				delete(want, traceparentHeader)
				delete(want, tracestateHeader)
				propagator.Inject(ctx, headerCarrier(want))
				for _, slot := range []*traceparentSlot{nil, new(traceparentSlot)} {
					got := stale()
					inject(ctx, got, slot, trace.SpanContext{})
					if !reflect.DeepEqual(got, want) {
						t.Errorf("flags %02x, tracestate %q, baggage %v, slot %v:\n got %v\nwant %v", byte(flags), ts, withBag, slot != nil, got, want)
					}
				}
			}
		}
	}
	// No span context: the request's own trace headers stay, no baggage is made up.
	h := http.Header{traceparentHeader: {"00-own"}}
	inject(context.Background(), h, nil, trace.SpanContext{})
	if want := (http.Header{traceparentHeader: {"00-own"}}); !reflect.DeepEqual(h, want) {
		t.Errorf("without a span context: %v, want %v", h, want)
	}
}
