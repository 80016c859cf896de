package telemetry

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
)

// Tracing is the OpenTelemetry tracing of one process: the tracer
// provider its server spans, client spans and logs use. Create it with
// [NewTracing] (from the standard OTEL_* environment) or [TracingWith] (a
// provider of the caller's). A nil *Tracing, like one that is off, makes no
// spans: its [Tracing.Middleware] still passes the request ID and the W3C
// trace context on, so that logs correlate and a trace continues through a
// process that does not record it.
type Tracing struct {
	provider trace.TracerProvider // nil: off
	tracer   trace.Tracer         // the server spans'; nil when off

	// Set when the provider is ours (NewTracing): Start gives it its
	// exporter, Shutdown flushes and stops it.
	sdk      *sdktrace.TracerProvider
	exporter sdktrace.SpanExporter
}

// Environment variables NewTracing reads, beside those the OpenTelemetry
// SDK and its OTLP/HTTP exporter read themselves (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_SERVICE_NAME).
const (
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envExporter       = "OTEL_TRACES_EXPORTER"
	envDisabled       = "OTEL_SDK_DISABLED"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envSamplerArg     = "OTEL_TRACES_SAMPLER_ARG"
)

// scope is the instrumentation scope of the spans Shoal makes.
const scope = "github.com/shoal-dev/shoal"

// NewTracing configures tracing from the standard OpenTelemetry
// environment for one instance of a service. service, instance and
// version are the resource attributes service.name, service.instance.id
// and service.version, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES
// say otherwise.
//
// Spans are exported over OTLP/HTTP (protobuf, or JSON with
// OTEL_EXPORTER_OTLP_PROTOCOL=http/json) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. Unlike the specification's
// default, no endpoint means no tracing at all (a [Tracing] that is off):
// a service run by hand does not send spans to a collector nobody runs.
// OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn it off too.
//
// Sampling is what OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG say,
// read as the SDK reads them, by default parent-based with a ratio of 1 (a request whose caller
// sampled it is recorded; one that starts a trace always is). Settings the
// SDK would only complain about (an unknown sampler or exporter, a ratio
// out of [0, 1], the gRPC protocol) are errors here, so that a typo stops
// the service at start rather than silently tracing otherwise.
//
// It does no I/O and starts no goroutine: [Tracing.Start] does.
func NewTracing(service, instance, version string) (*Tracing, error) {
	on, err := tracingOn(os.Getenv)
	if err != nil || !on {
		return nil, err
	}
	exp, err := otlptracehttp.New(context.Background())
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(service), semconv.ServiceInstanceID(instance)}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	// The environment's attributes win over the arguments (the SDK would
	// let ours win).
	res, err := resource.Merge(resource.NewSchemaless(attrs...), resource.Environment())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	sampler, err := samplerFrom(os.Getenv(envSampler), os.Getenv(envSamplerArg)) // checked by tracingOn
	if err != nil {
		return nil, err
	}
	// A client.TracerProvider: the services' Transports then decide the
	// traces they start themselves (see client.TracerProvider).
	tp := client.NewTracerProvider(sampler, sdktrace.WithResource(res))
	return &Tracing{provider: tp, tracer: tp.Tracer(scope), sdk: tp.TracerProvider, exporter: exp}, nil
}

// TracingWith returns the Tracing of a provider the caller owns (starts,
// flushes and shuts down): an in-memory recorder in tests, a provider
// configured in code. A nil tp means off.
func TracingWith(tp trace.TracerProvider) *Tracing {
	if tp == nil {
		return nil
	}
	return &Tracing{provider: tp, tracer: tp.Tracer(scope)}
}

// tracingOn reads whether the environment asks for spans to be exported,
// and checks what the SDK reads itself.
func tracingOn(getenv func(string) string) (bool, error) {
	if v := getenv(envDisabled); v != "" {
		off, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("telemetry: %s=%q: want true or false", envDisabled, v)
		}
		if off {
			return false, nil
		}
	}
	switch v := strings.TrimSpace(getenv(envExporter)); v {
	case "", "otlp":
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("telemetry: %s=%q: Shoal exports spans with otlp (or none)", envExporter, v)
	}
	for _, k := range []string{envTracesProtocol, envProtocol} {
		switch v := getenv(k); v {
		case "", "http/protobuf", "http/json":
		default:
			return false, fmt.Errorf("telemetry: %s=%q: Shoal exports OTLP over HTTP: want http/protobuf or http/json", k, v)
		}
	}
	if _, err := samplerFrom(getenv(envSampler), getenv(envSamplerArg)); err != nil {
		return false, err
	}
	return getenv(envTracesEndpoint) != "" || getenv(envEndpoint) != "", nil
}

// samplerFrom returns the sampler OTEL_TRACES_SAMPLER (name) and
// OTEL_TRACES_SAMPLER_ARG (arg) name, as the SDK reads them, except that
// settings the SDK would replace by its default with no more than a log
// line are errors.
func samplerFrom(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (sdktrace.Sampler, error) {
		if arg = strings.TrimSpace(arg); arg == "" {
			return sdktrace.AlwaysSample(), nil // a ratio of 1
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("telemetry: %s=%q: want a ratio from 0 to 1", envSamplerArg, arg)
		}
		return sdktrace.TraceIDRatioBased(r), nil
	}
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return ratio()
	case "parentbased_traceidratio":
		root, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(root), nil
	}
	return nil, fmt.Errorf("telemetry: %s=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", envSampler, name)
}

// Provider returns the tracer provider; nil when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.provider
}

// Start begins exporting the spans of a provider NewTracing made: its batch
// span processor starts a goroutine, which Shutdown ends. It does nothing
// for other providers, or when tracing is off. Spans that end before Start
// are dropped. Call it once, before Shutdown.
func (t *Tracing) Start() {
	if t == nil || t.sdk == nil {
		return
	}
	t.sdk.RegisterSpanProcessor(sdktrace.NewBatchSpanProcessor(t.exporter))
}

// Shutdown exports the spans not yet exported, within ctx, and stops
// exporting, for a provider NewTracing made; it does nothing for others.
// Calls after the first do nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: exporting the last spans: %w", err)
	}
	return nil
}
