package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
)

const (
	callerTrace = "0af7651916cd43dd8448eb211c80319c"
	callerSpan  = "b7ad6b7169203331"
	callerTP    = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// handled is what a handler behind the middleware saw.
type handled struct {
	ctx context.Context
	id  string // X-Request-Id of the request it got
}

func serveOnce(t *testing.T, tr *Tracing, req *http.Request, h http.HandlerFunc) (*httptest.ResponseRecorder, handled) {
	t.Helper()
	var got handled
	w := httptest.NewRecorder()
	tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = handled{ctx: r.Context(), id: r.Header.Get(client.RequestIDHeader)}
		if h != nil {
			h(w, r)
		}
	})).ServeHTTP(w, req)
	return w, got
}

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestMiddlewareRequestID(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  []string // the caller's X-Request-Id values
		keep bool
	}{
		{name: "none"},
		{name: "sane", ids: []string{"abc-123"}, keep: true},
		{name: "empty", ids: []string{""}},
		{name: "space", ids: []string{"a b"}},
		{name: "control", ids: []string{"a\x01b"}},
		{name: "too long", ids: []string{strings.Repeat("x", 129)}},
		{name: "longest", ids: []string{strings.Repeat("x", 128)}, keep: true},
		{name: "two", ids: []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/x", nil)
			for _, id := range tc.ids {
				req.Header.Add(client.RequestIDHeader, id)
			}
			w, got := serveOnce(t, nil, req, nil)
			id := client.RequestID(got.ctx)
			if tc.keep && id != tc.ids[0] || !tc.keep && !hex16.MatchString(id) {
				t.Fatalf("request ID %q from %q", id, tc.ids)
			}
			if got.id != id || w.Header().Get(client.RequestIDHeader) != id {
				t.Errorf("request header %q, response header %q, context %q", got.id, w.Header().Get(client.RequestIDHeader), id)
			}
		})
	}
}

func TestMiddlewareNotTracing(t *testing.T) {
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Traceparent", callerTP)
	req.Header.Set("Baggage", "tenant=acme")
	_, got := serveOnce(t, nil, req, nil)
	sc := trace.SpanContextFromContext(got.ctx)
	if sc.TraceID().String() != callerTrace || sc.SpanID().String() != callerSpan || !sc.IsRemote() {
		t.Errorf("span context %v, want the caller's", sc)
	}
	if v := baggage.FromContext(got.ctx).Member("tenant").Value(); v != "acme" {
		t.Errorf("baggage tenant = %q", v)
	}
}

func TestMiddlewareServerSpan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tp      string // the caller's traceparent
		handler http.HandlerFunc
		code    string
		failed  bool
		gone    bool // the caller went away before the answer
	}{
		{name: "ok", tp: callerTP, code: "200"},
		{name: "new trace", code: "200"},
		{name: "not found", tp: callerTP, handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, code: "404"},
		{name: "unavailable", tp: callerTP, handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, code: "503", failed: true},
		{name: "caller gone", tp: callerTP, handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, code: "499", gone: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tr := TracingWith(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
			req := httptest.NewRequest("POST", "/titles/7?x=1", nil)
			if tc.tp != "" {
				req.Header.Set("Traceparent", tc.tp)
			}
			if tc.gone {
				ctx, leave := context.WithCancel(req.Context())
				leave()
				req = req.WithContext(ctx)
			}
			_, got := serveOnce(t, tr, req, tc.handler)
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			s := spans[0]
			if s.Name() != "POST /titles/7" || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
			}
			if trace.SpanContextFromContext(got.ctx).SpanID() != s.SpanContext().SpanID() {
				t.Errorf("the handler's context does not hold the server span")
			}
			if tc.tp != "" && (s.Parent().SpanID().String() != callerSpan || s.SpanContext().TraceID().String() != callerTrace) {
				t.Errorf("parent %v, want the caller's span", s.Parent())
			}
			if tc.tp == "" && s.Parent().IsValid() {
				t.Errorf("parent %v, want a root span", s.Parent())
			}
			want := map[attribute.Key]string{"http.request.method": "POST", "url.path": "/titles/7", "http.response.status_code": tc.code}
			for _, kv := range s.Attributes() {
				if w, ok := want[kv.Key]; ok && kv.Value.String() == w {
					delete(want, kv.Key)
				}
			}
			if len(want) != 0 {
				t.Errorf("attributes %v lack %v", s.Attributes(), want)
			}
			if (s.Status().Code == codes.Error) != tc.failed {
				t.Errorf("status %v, failed %v", s.Status(), tc.failed)
			}
		})
	}
}

// TestMiddlewarePanic: a handler that panics ends its span as a 500, and
// the panic goes on.
func TestMiddlewarePanic(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := TracingWith(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want the handler's panic", p)
		}
		spans := rec.Ended()
		if len(spans) != 1 || spans[0].Status().Code != codes.Error {
			t.Fatalf("spans %v, want one failed", spans)
		}
	}()
	serveOnce(t, tr, httptest.NewRequest("GET", "/", nil), func(http.ResponseWriter, *http.Request) { panic("boom") })
}

// TestMiddlewareUnsampled: a span not sampled is not recorded, but its
// context is there for the handler's calls to pass on.
func TestMiddlewareUnsampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := TracingWith(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample()))))
	_, got := serveOnce(t, tr, httptest.NewRequest("GET", "/", nil), nil)
	if sc := trace.SpanContextFromContext(got.ctx); !sc.IsValid() || sc.IsSampled() {
		t.Errorf("span context %v, want valid and not sampled", sc)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded", n)
	}
}
