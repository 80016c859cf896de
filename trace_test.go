package shoal

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/telemetry/telemetrytest"
)

// TestTraceAcrossServices: a request to alpha, which calls beta, is one
// trace: the caller's span → alpha's server span → alpha's client span of
// the call → beta's server span; the request ID and baggage reach beta;
// and the line each logs with its request's context names the trace, its
// own server span and the request ID.
func TestTraceAcrossServices(t *testing.T) {
	spans := telemetrytest.NewSpans()
	logs := newLogRecorder()

	var betaSaw struct {
		sync.Mutex
		baggage, requestID string
	}
	var beta *Service
	// beta routes: its server span is named by the route template.
	betaRoutes := &Router{}
	betaRoutes.HandleFunc("GET /{name}", func(w http.ResponseWriter, r *http.Request) {
		betaSaw.Lock()
		betaSaw.baggage = baggage.FromContext(r.Context()).Member("tenant").Value()
		betaSaw.requestID = r.Header.Get(RequestIDHeader)
		betaSaw.Unlock()
		beta.Logger().InfoContext(r.Context(), "beta answers")
		io.WriteString(w, "from beta")
	})
	beta, _, _ = start(t, Config{Name: "beta", TracerProvider: spans.Provider("beta"), Logger: logs.logger()}, betaRoutes)
	var alpha *Service
	alpha, _, _ = start(t, Config{Name: "alpha", TracerProvider: spans.Provider("alpha"), Logger: logs.logger(),
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
	waitUntil(t, "alpha to see beta", func() bool { return len(alpha.Instances("beta")) > 0 })
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

	byName := spans.Wait(t, 3)
	alphaServer, alphaCall, betaServer := byName["alpha GET /a"], byName["alpha GET beta"], byName["beta GET /{name}"]
	if alphaServer == nil || alphaCall == nil || betaServer == nil {
		t.Fatalf("spans %v, want alpha's server and client spans and beta's server span", byName)
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range betaServer.Attributes() {
		attrs[kv.Key] = kv.Value.String()
	}
	if attrs["http.route"] != "/{name}" || attrs["url.path"] != "/b" {
		t.Errorf("beta's server span: http.route %q, url.path %q; want /{name} and /b", attrs["http.route"], attrs["url.path"])
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

	text := logs.text()
	for _, want := range []struct{ msg, span string }{
		{"alpha calls beta", alphaServer.SpanContext().SpanID().String()},
		{"beta answers", betaServer.SpanContext().SpanID().String()},
	} {
		line := lineWith(text, want.msg)
		for _, attr := range []string{"trace_id=" + callerTrace, "span_id=" + want.span, "request_id=req-77"} {
			if !strings.Contains(line, " "+attr) {
				t.Errorf("line %q lacks %s", line, attr)
			}
		}
	}
	if line := lineWith(text, "outside any request"); line == "" || strings.Contains(line, "_id=") {
		t.Errorf("a line without a request's context: %q", line)
	}
}

// lineWith returns the line of text that logs msg; "" if none.
func lineWith(text, msg string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, "INFO "+msg+" ") || line == "INFO "+msg {
			return line
		}
	}
	return ""
}
