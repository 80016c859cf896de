package client

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracerProvider is an OpenTelemetry SDK tracer provider whose sampler a
// Transport knows: a call that starts a trace (made outside any span) is
// decided by the Transport itself, and one that is not sampled starts no
// span at all. Through a plain SDK provider, the SDK makes an unrecorded
// span for it, to carry the new trace's IDs: two allocations and about
// 0.3 µs per call (docs/BENCHMARKS.md, "Tracing overhead"). A sampled one
// is started by the SDK with the IDs the Transport decided it with, so the
// decision is the same (every sampler OTEL_TRACES_SAMPLER names decides by
// the trace ID or not at all). NewTracerProvider makes one; the SDK's own
// services use it (telemetry.NewTracing).
type TracerProvider struct {
	*sdktrace.TracerProvider
	sampler sdktrace.Sampler
}

// NewTracerProvider returns an SDK tracer provider configured by opts that
// samples with sampler and makes span IDs as a Transport expects; a
// sampler or an ID generator in opts is overridden.
func NewTracerProvider(sampler sdktrace.Sampler, opts ...sdktrace.TracerProviderOption) *TracerProvider {
	opts = append(opts[:len(opts):len(opts)], sdktrace.WithSampler(sampler), sdktrace.WithIDGenerator(idGenerator{}))
	return &TracerProvider{TracerProvider: sdktrace.NewTracerProvider(opts...), sampler: sampler}
}

// decideRoot decides, with sampler, whether the trace a call named name
// starts in ctx (which has no span) is sampled. If not, it returns the new
// trace's span context, which the call's attempts carry (see inject), and
// no span is made. If so, it returns ctx with the IDs it decided on, for
// the SDK to start the call's span with (see idGenerator).
func decideRoot(ctx context.Context, sampler sdktrace.Sampler, name string) (context.Context, trace.SpanContext, bool) {
	tid, sid := newIDs()
	res := sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name, Kind: trace.SpanKindClient})
	if res.Decision == sdktrace.Drop {
		return ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceState: res.Tracestate}), false
	}
	return &idsCtx{Context: ctx, tid: tid, sid: sid}, trace.SpanContext{}, true
}

// idGenerator makes random IDs, as the SDK's default does, except for the
// first new trace started with a context from decideRoot: that one gets
// the IDs it was decided with.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if c, ok := ctx.Value(idsKey{}).(*idsCtx); ok && c.taken.CompareAndSwap(false, true) {
		return c.tid, c.sid
	}
	return newIDs()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

type idsKey struct{}

// idsCtx carries the IDs decideRoot chose, once: a context derived from
// it that starts another trace (trace.WithNewRoot) gets new ones.
type idsCtx struct {
	context.Context
	tid   trace.TraceID
	sid   trace.SpanID
	taken atomic.Bool
}

func (c *idsCtx) Value(key any) any {
	if _, ok := key.(idsKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// newIDs returns a random trace ID and span ID, neither all zeros (the
// runtime's ChaCha8 generator, as the SDK's default ID generator uses).
func newIDs() (tid trace.TraceID, sid trace.SpanID) {
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func newSpanID() (sid trace.SpanID) {
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
