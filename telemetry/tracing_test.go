package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestTracingOn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		errPart string // "" for no error
	}{
		{name: "nothing set", env: nil},
		{name: "endpoint", env: map[string]string{envEndpoint: "http://127.0.0.1:4318"}, on: true},
		{name: "traces endpoint", env: map[string]string{envTracesEndpoint: "http://127.0.0.1:4318/v1/traces"}, on: true},
		{name: "disabled", env: map[string]string{envEndpoint: "http://x", envDisabled: "true"}},
		{name: "disabled false", env: map[string]string{envEndpoint: "http://x", envDisabled: "false"}, on: true},
		{name: "disabled typo", env: map[string]string{envDisabled: "yes please"}, errPart: envDisabled},
		{name: "exporter none", env: map[string]string{envEndpoint: "http://x", envExporter: "none"}},
		{name: "exporter zipkin", env: map[string]string{envEndpoint: "http://x", envExporter: "zipkin"}, errPart: envExporter},
		{name: "protocol json", env: map[string]string{envEndpoint: "http://x", envProtocol: "http/json"}, on: true},
		{name: "protocol grpc", env: map[string]string{envEndpoint: "http://x", envTracesProtocol: "grpc"}, errPart: envTracesProtocol},
		{name: "ratio", env: map[string]string{envEndpoint: "http://x", envSampler: "parentbased_traceidratio", envSamplerArg: "0.25"}, on: true},
		{name: "ratio out of range", env: map[string]string{envSampler: "traceidratio", envSamplerArg: "2"}, errPart: envSamplerArg},
		{name: "ratio not a number", env: map[string]string{envSampler: "traceidratio", envSamplerArg: "half"}, errPart: envSamplerArg},
		{name: "unknown sampler", env: map[string]string{envSampler: "sometimes"}, errPart: envSampler},
		{name: "always_off", env: map[string]string{envEndpoint: "http://x", envSampler: "always_off"}, on: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, err := tracingOn(func(k string) string { return tc.env[k] })
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errPart)
				}
				return
			}
			if err != nil || on != tc.on {
				t.Fatalf("on %v, err %v; want %v, nil", on, err, tc.on)
			}
		})
	}
}

// otlpSink is an OTLP/HTTP receiver: it keeps the spans' names and the
// resource attributes of each export.
type otlpSink struct {
	mu    sync.Mutex
	spans []string
	res   []string
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, a := range rs.Resource.Attributes {
			s.res = append(s.res, a.Key+"="+a.Value.GetStringValue())
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s.spans = append(s.spans, sp.Name)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// TestNewTracingExports: the standard environment sends the spans of
// server requests over OTLP/HTTP, named by service and instance, and
// Shutdown flushes them.
func TestNewTracingExports(t *testing.T) {
	var sink otlpSink
	srv := httptest.NewServer(&sink)
	defer srv.Close()
	t.Setenv(envEndpoint, srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000") // only Shutdown exports
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")

	tr, err := NewTracing("catalog", "catalog-1", "v1")
	if err != nil || tr == nil {
		t.Fatalf("%v %v", tr, err)
	}
	tr.Start()
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/titles/1", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if strings.Join(sink.spans, ",") != "GET /titles/1" {
		t.Errorf("spans %q, want the one server span", sink.spans)
	}
	res := strings.Join(sink.res, ",")
	for _, want := range []string{"service.name=catalog", "service.instance.id=catalog-1", "service.version=v1", "deployment.environment=test"} {
		if !strings.Contains(res, want) {
			t.Errorf("resource %s lacks %s", res, want)
		}
	}
}

func TestNewTracingOff(t *testing.T) {
	tr, err := NewTracing("catalog", "catalog-1", "")
	if err != nil || tr != nil {
		t.Fatalf("%v %v, want nil, nil without an endpoint", tr, err)
	}
	// A nil Tracing is usable.
	tr.Start()
	if err := tr.Shutdown(context.Background()); err != nil || tr.Provider() != nil {
		t.Fatal(err)
	}
}

// TestSamplerFrom: the sampler read from the environment is the one the
// SDK would build from it (NewTracing gives it to the provider itself, so
// that the services' Transports know it).
func TestSamplerFrom(t *testing.T) {
	for _, tc := range []struct{ name, arg, want string }{
		{"", "", "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"},
		{"parentbased_always_on", "", "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"},
		{"parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"},
		{"always_on", "", "AlwaysOnSampler"},
		{" Always_Off ", "", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"traceidratio", "", "AlwaysOnSampler"},
		{"parentbased_traceidratio", "0.5", "ParentBased{root:TraceIDRatioBased{0.5},remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"},
	} {
		s, err := samplerFrom(tc.name, tc.arg)
		if err != nil {
			t.Errorf("%q, %q: %v", tc.name, tc.arg, err)
			continue
		}
		if got := s.Description(); got != tc.want {
			t.Errorf("%q, %q: %s, want %s", tc.name, tc.arg, got, tc.want)
		}
	}
}
