package gateway_test

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/telemetry"
	"github.com/shoal-dev/shoal/telemetry/telemetrytest"
)

// TestTraceThroughGateway: on either server, a request through the
// gateway is one trace: the caller's span (if any) → the gateway's server
// span → its client span of the proxied call → the service's server span;
// the request ID and baggage reach the service.
func TestTraceThroughGateway(t *testing.T) {
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, srv := range servers {
		for _, caller := range []bool{true, false} {
			name := srv.name + "/new trace"
			if caller {
				name = srv.name + "/caller's trace"
			}
			t.Run(name, func(t *testing.T) {
				spans := telemetrytest.NewSpans()
				e := startEdgeWith(t, shoal.Config{TracerProvider: spans.Provider("gateway")}, 10*time.Second, srv.engine)
				var saw struct {
					sync.Mutex
					tenant, requestID string
				}
				e.backend(t, "api", telemetry.TracingWith(spans.Provider("api")).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					saw.Lock()
					saw.tenant = baggage.FromContext(r.Context()).Member("tenant").Value()
					saw.requestID = r.Header.Get(shoal.RequestIDHeader)
					saw.Unlock()
					io.WriteString(w, "ok")
				})))

				req, _ := http.NewRequest("GET", "http://"+e.addr+"/api/titles/7", nil)
				if caller {
					req.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
				}
				req.Header.Set("Baggage", "tenant=acme")
				req.Header.Set(shoal.RequestIDHeader, "req-5")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get(shoal.RequestIDHeader) != "req-5" {
					t.Fatalf("%s, request ID %q", resp.Status, resp.Header.Get(shoal.RequestIDHeader))
				}

				byName := spans.Wait(t, 3)
				server, call, api := byName["gateway GET /api/titles/7"], byName["gateway GET api"], byName["api GET /titles/7"]
				if server == nil || call == nil || api == nil {
					t.Fatalf("spans %v, want the gateway's server and client spans and the service's", byName)
				}
				if server.SpanKind() != trace.SpanKindServer || call.SpanKind() != trace.SpanKindClient {
					t.Errorf("kinds %v %v", server.SpanKind(), call.SpanKind())
				}
				tid := server.SpanContext().TraceID()
				switch {
				case caller && (tid.String() != callerTrace || server.Parent().SpanID().String() != callerSpan):
					t.Errorf("gateway span in trace %s under %s, want the caller's", tid, server.Parent().SpanID())
				case !caller && server.Parent().IsValid():
					t.Errorf("gateway span under %v, want a new trace", server.Parent())
				}
				if call.Parent().SpanID() != server.SpanContext().SpanID() || call.SpanContext().TraceID() != tid {
					t.Errorf("the call's parent %s, want the gateway's server span", call.Parent().SpanID())
				}
				if api.Parent().SpanID() != call.SpanContext().SpanID() || api.SpanContext().TraceID() != tid {
					t.Errorf("the service's parent %s, want the gateway's call", api.Parent().SpanID())
				}
				saw.Lock()
				defer saw.Unlock()
				if saw.tenant != "acme" || saw.requestID != "req-5" {
					t.Errorf("the service saw baggage tenant=%q, request ID %q", saw.tenant, saw.requestID)
				}
			})
		}
	}
}
