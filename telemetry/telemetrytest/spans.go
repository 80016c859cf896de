// Package telemetrytest records the spans of tests that run several
// services in one process, telling the services apart.
package telemetrytest

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Spans records, in memory, the spans that end in the providers it makes.
// Safe for concurrent use.
type Spans struct {
	rec *tracetest.SpanRecorder
}

// NewSpans returns an empty recorder.
func NewSpans() *Spans { return &Spans{rec: tracetest.NewSpanRecorder()} }

// Provider returns a tracer provider, sampling everything, whose spans
// are recorded as service's (the resource attribute service.name).
func (s *Spans) Provider(service string) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
}

// Wait returns the spans ended once there are n, by "<service> <span
// name>"; it fails t if fewer than n end within 5 s. A server span may end
// just after its response reached the client, hence the wait.
func (s *Spans) Wait(t testing.TB, n int) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	var ended []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ended = s.rec.Ended(); len(ended) >= n || time.Now().After(deadline) {
			break
		}
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range ended {
		svc, _ := sp.Resource().Set().Value("service.name")
		byName[svc.AsString()+" "+sp.Name()] = sp
	}
	if len(ended) < n {
		t.Fatalf("%d spans ended within 5 s, want %d: %v", len(ended), n, byName)
	}
	return byName
}
