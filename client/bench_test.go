package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/cpumeter"
	"github.com/shoal-dev/shoal/internal/testidentity"
)

// BenchmarkCall compares one GET through the full client stack with the
// same GET through a plain http.Transport, to the same loopback server, and
// the client stack over plain HTTP with the same over mutual TLS (what every
// call between services with an identity pays). The difference between
// the first two is what Shoal adds per call; between shoal and shoal+mtls,
// what mutual TLS adds on a kept-alive connection. The reconnect arms close
// the connection after every response, so each call pays a connection:
// TCP, plus a resumed TLS session with mTLS (the first call's full
// handshake is amortised):
//
//	go test -run '^$' -bench BenchmarkCall -count 10 ./client | benchstat -col /stack -
func BenchmarkCall(b *testing.B) {
	ca := testidentity.CA(b, "bench")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	closing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	})
	plainSrv, plainClosing := httptest.NewServer(ok), httptest.NewServer(closing)
	svc := testidentity.Source(b, ca, "svc")
	mtlsSrv, mtlsClosing := testidentity.Server(b, svc, ok), testidentity.Server(b, svc, closing)
	for _, s := range []*httptest.Server{plainSrv, plainClosing} {
		defer s.Close()
	}
	addr := plainSrv.Listener.Addr().String()
	plain := newBaseTransport()
	defer plain.CloseIdleConnections()
	dialer := identity.NewDialer(testidentity.Source(b, ca, "caller"), nil)
	stack := func(srv *httptest.Server, tls bool) http.RoundTripper {
		cfg := Config{}
		if tls {
			cfg.TLS = dialer
		}
		tr, err := New(oneInstance(srv.Listener.Addr().String()), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(tr.CloseIdleConnections)
		return tr
	}

	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
		url  string
	}{
		{"stack=plain", plain, "http://" + addr + "/x"},
		{"stack=shoal", stack(plainSrv, false), "http://svc/x"},
		{"stack=shoal+mtls", stack(mtlsSrv, true), "http://svc/x"},
		{"stack=shoal/reconnect", stack(plainClosing, false), "http://svc/x"},
		{"stack=shoal+mtls/reconnect", stack(mtlsClosing, true), "http://svc/x"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchGet(b, context.Background(), bc.rt, bc.url)
		})
	}
}

// BenchmarkOverhead measures the client stack alone: the same calls with
// the network replaced by an in-memory round tripper, so the figures are
// Shoal's own cost per call (throttle, bulkhead, resolve, pick, budget,
// deadline carving, header, bookkeeping) without the noise of a real round
// trip. With 3 instances every policy is in play: calls are hedge-eligible,
// so each also reads the hedge delay and arms (and stops) the hedge timer.
//
// The trace= variants add tracing through an OpenTelemetry SDK provider
// (parent-based sampling, as by default) whose batch processor exports to
// nowhere, for a call made while serving a request whose span was sampled
// (the call's span recorded, its context sent on) or not (the caller's
// context sent on only); trace=root-unsampled is a call outside any
// request whose new trace is not sampled, decided by the Transport (a
// TracerProvider, as the SDK's services have) or by the SDK (-sdk: a
// plain SDK provider). Compare them with the trace=off
// rows of the same run (no tracing, no trace context):
//
//	go test -run '^$' -bench BenchmarkOverhead -count 10 ./client | benchstat -col /stack -
func BenchmarkOverhead(b *testing.B) {
	sampled, unsampled := benchProvider(b, sdktrace.AlwaysSample()), benchProvider(b, sdktrace.NeverSample())
	for _, bc := range []struct {
		name   string
		rt     http.RoundTripper
		parent trace.TraceFlags // of the span of the request served; none if 0
	}{
		{"stack=fake", fakeRoundTripper{}, 0},
		{"stack=shoal+fake/trace=off", fakeShoal(b, 1, nil), 0},
		{"stack=shoal+fake/trace=sampled", fakeShoal(b, 1, sampled), trace.FlagsSampled},
		{"stack=shoal+fake/trace=unsampled", fakeShoal(b, 1, unsampled), notSampled},
		{"stack=shoal+fake/trace=root-unsampled", fakeShoal(b, 1, unsampled), 0},
		{"stack=shoal+fake/trace=root-unsampled-sdk", fakeShoal(b, 1, sdkBenchProvider(b, sdktrace.NeverSample())), 0},
		{"stack=shoal3+fake/trace=off", fakeShoal(b, 3, nil), 0},
		{"stack=shoal3+fake/trace=sampled", fakeShoal(b, 3, sampled), trace.FlagsSampled},
		{"stack=shoal3+fake/trace=unsampled", fakeShoal(b, 3, unsampled), notSampled},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if bc.parent != 0 {
				ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: bc.parent &^ notSampled,
				}))
			}
			benchGet(b, ctx, bc.rt, "http://svc/x")
		})
	}
}

// notSampled marks a parent span that is not sampled, whose flags are 0.
const notSampled trace.TraceFlags = 0x80

// benchProvider is a tracer provider sampling with sampler (parent-based,
// as by default) that exports, in batches, to nowhere; shut down when b
// ends.
func benchProvider(b testing.TB, sampler sdktrace.Sampler) *TracerProvider {
	tp := NewTracerProvider(sdktrace.ParentBased(sampler), sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

// sdkBenchProvider is benchProvider with the SDK's own provider, whose
// sampler a Transport does not know.
func sdkBenchProvider(b testing.TB, sampler sdktrace.Sampler) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
		sdktrace.WithBatcher(discardExporter{}))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// fakeShoal is a Transport over n instances answered by fakeRoundTripper,
// its hedge delay already known, tracing with tp if not nil.
func fakeShoal(b testing.TB, n int, tp trace.TracerProvider) *Transport {
	list := make([]discovery.Instance, n)
	for i := range list {
		list[i] = discovery.Instance{ID: fmt.Sprintf("svc-%d", i), Service: "svc", Addr: fmt.Sprintf("127.0.0.1:%d", i+1), State: discovery.StateServing}
	}
	tr, err := New(resolverFunc(func(string) []discovery.Instance { return list }), Config{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	tr.base = fakeRoundTripper{}
	h := tr.dependency("svc").hedger
	for range 100 {
		h.Observe(time.Now(), time.Millisecond)
	}
	return tr
}

func benchGet(b *testing.B, ctx context.Context, rt http.RoundTripper, url string) {
	ctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	// Process CPU per call, both ends (client and server share the
	// process): on a shared machine, wall time mostly measures waiting.
	cpu := cpumeter.Start()
	defer cpu.Report(b)
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// oneInstance returns a resolver with a single instance at addr. Like the
// discovery catalog, it hands out the same slice on every call.
func oneInstance(addr string) resolverFunc {
	list := []discovery.Instance{{ID: "svc-0", Service: "svc", Addr: addr, State: discovery.StateServing}}
	return func(string) []discovery.Instance { return list }
}

// fakeRoundTripper answers 200 "ok" from memory, with a body that allocates
// nothing.
type fakeRoundTripper struct{}

var okResponse = http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}

func (fakeRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := okResponse
	resp.Body = http.NoBody
	resp.Request = req
	return &resp, nil
}
