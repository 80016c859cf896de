package shoal

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// jsonLines is a concurrency-safe sink of JSON log lines.
type jsonLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.buf.Write(p)
}

// withMessage returns the line logged with msg, decoded; nil if none.
func (j *jsonLines) withMessage(msg string) map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	for line := range strings.SplitSeq(j.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

// TestTraceAcrossServices: a request to alpha, which calls beta, is one
// trace: the caller's span → alpha's server span → alpha's client span of
// the call → beta's server span; the request ID and baggage reach beta;
// and every line either logs with its request's context names the trace,
// its own span and the request ID.
func TestTraceAcrossServices(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	provider := func(service string) *sdktrace.TracerProvider {
		return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	}
	var logs jsonLines
	logger := slog.New(slog.NewJSONHandler(&logs, nil))

	var betaSaw struct {
		sync.Mutex
		baggage, requestID string
	}
	var beta *Service
	beta, _, _ = start(t, Config{Name: "beta", TracerProvider: provider("beta"), Logger: logger},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			betaSaw.Lock()
			betaSaw.baggage = baggage.FromContext(r.Context()).Member("tenant").Value()
			betaSaw.requestID = r.Header.Get(RequestIDHeader)
			betaSaw.Unlock()
			beta.Logger().InfoContext(r.Context(), "beta answers")
			io.WriteString(w, "from beta")
		}))
	var alpha *Service
	alpha, _, _ = start(t, Config{Name: "alpha", TracerProvider: provider("alpha"), Logger: logger,
		Seeds: []string{beta.member.Load().GossipAddr()}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			alpha.Logger().InfoContext(r.Context(), "alpha calls beta")
			req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://beta/b", nil)
			resp, err := alpha.Client().Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		}))
	deadline := time.Now().Add(10 * time.Second)
	for len(alpha.Catalog().Instances("beta")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("alpha never saw beta")
		}
		time.Sleep(10 * time.Millisecond)
	}
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("GET", "http://"+alpha.Addr()+"/a", nil)
	req.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	req.Header.Set("Baggage", "tenant=acme")
	req.Header.Set(RequestIDHeader, "req-77")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from beta" || resp.Header.Get(RequestIDHeader) != "req-77" {
		t.Fatalf("%s %q, request ID %q", resp.Status, body, resp.Header.Get(RequestIDHeader))
	}
	beta.Logger().InfoContext(req.Context(), "outside any request")

	// alpha's server span ends after its response is written: wait for it.
	var spans []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); len(spans) < 3 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		spans = rec.Ended()
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Resource().Set().Encoded(attribute.DefaultEncoder())+" "+s.Name()] = s
	}
	alphaServer, alphaCall, betaServer := byName["service.name=alpha GET /a"], byName["service.name=alpha GET beta"], byName["service.name=beta GET /b"]
	if alphaServer == nil || alphaCall == nil || betaServer == nil {
		t.Fatalf("spans %v, want alpha's server and client spans and beta's server span", byName)
	}
	for _, link := range []struct {
		name          string
		child, parent trace.SpanContext
	}{
		{"alpha's server span under the caller's", alphaServer.Parent(), trace.SpanContext{}},
		{"alpha's call under its server span", alphaCall.Parent(), alphaServer.SpanContext()},
		{"beta's server span under alpha's call", betaServer.Parent(), alphaCall.SpanContext()},
	} {
		want := callerSpan
		if link.parent.IsValid() {
			want = link.parent.SpanID().String()
		}
		if link.child.SpanID().String() != want || link.child.TraceID().String() != callerTrace {
			t.Errorf("%s: parent %s in trace %s, want %s in %s", link.name, link.child.SpanID(), link.child.TraceID(), want, callerTrace)
		}
	}
	if alphaCall.SpanKind() != trace.SpanKindClient || betaServer.SpanKind() != trace.SpanKindServer {
		t.Errorf("kinds %v, %v", alphaCall.SpanKind(), betaServer.SpanKind())
	}
	betaSaw.Lock()
	if betaSaw.baggage != "acme" || betaSaw.requestID != "req-77" {
		t.Errorf("beta saw baggage tenant=%q, request ID %q", betaSaw.baggage, betaSaw.requestID)
	}
	betaSaw.Unlock()

	line := logs.withMessage("alpha calls beta")
	if line == nil {
		t.Fatal("alpha's line not logged")
	}
	if line["trace_id"] != callerTrace || line["span_id"] != alphaServer.SpanContext().SpanID().String() || line["request_id"] != "req-77" {
		t.Errorf("alpha's line %v: want trace %s, span %s, request req-77", line, callerTrace, alphaServer.SpanContext().SpanID())
	}
	line = logs.withMessage("beta answers")
	if line == nil || line["trace_id"] != callerTrace || line["span_id"] != betaServer.SpanContext().SpanID().String() || line["request_id"] != "req-77" {
		t.Errorf("beta's line %v: want trace %s, span %s, request req-77", line, callerTrace, betaServer.SpanContext().SpanID())
	}
	if line := logs.withMessage("outside any request"); line == nil || line["trace_id"] != nil || line["request_id"] != nil {
		t.Errorf("a line without a request's context: %v", line)
	}
}
