package supervisor

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// exporterTo returns a tracer provider of one instance that exports
// synchronously, through the real OTLP/HTTP exporter, to url (the
// receiver's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT carries it).
func exporterTo(t *testing.T, url, token, service, instance string, opts ...otlptracehttp.Option) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), append([]otlptracehttp.Option{otlptracehttp.WithEndpointURL(url + otlpTracesPath),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.instance.id", instance))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// TestOTLPReceiverThroughExporter sends one trace across three services
// through the real exporter and reads it back as the dashboard does.
func TestOTLPReceiverThroughExporter(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			store, auth := newTraceStore(defaultTraceLimits), newOTLPAuth()
			srv := httptest.NewServer(otlpHandler(store, auth, nil))
			defer srv.Close()
			var opts []otlptracehttp.Option
			if gz {
				opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
			}
			gw := exporterTo(t, srv.URL, auth.token(sender{"gateway", "gateway-1-aaaa"}), "gateway", "gateway-1-aaaa", opts...).Tracer("t")
			api := exporterTo(t, srv.URL, auth.token(sender{"api", "api-2-bbbb"}), "api", "api-2-bbbb", opts...).Tracer("t")
			cat := exporterTo(t, srv.URL, auth.token(sender{"catalog", "catalog-3-cccc"}), "catalog", "catalog-3-cccc", opts...).Tracer("t")

			ctx, root := gw.Start(context.Background(), "GET /home", trace.WithSpanKind(trace.SpanKindServer))
			actx, call := api.Start(ctx, "GET /home", trace.WithSpanKind(trace.SpanKindServer))
			_, a1 := api.Start(actx, "attempt", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
				attribute.Int("shoal.attempt", 1), attribute.String("shoal.attempt.reason", "first"), attribute.String("shoal.instance", "catalog-3-cccc")))
			cctx := trace.ContextWithSpanContext(context.Background(), a1.SpanContext())
			_, srvSpan := cat.Start(cctx, "GET /titles/1", trace.WithSpanKind(trace.SpanKindServer))
			srvSpan.SetStatus(codes.Error, "boom")
			srvSpan.End()
			a1.End()
			call.End()
			root.End()

			id := root.SpanContext().TraceID().String()
			got, ok := store.get(mustTraceKey(t, id))
			if !ok {
				t.Fatalf("trace %s not stored", id)
			}
			if got.Spans != 4 || got.Root != "GET /home" || got.Service != "gateway" || got.Errors != 1 {
				t.Errorf("summary = %+v", got.TraceSummary)
			}
			if want := []string{"api", "catalog", "gateway"}; fmt.Sprint(got.Services) != fmt.Sprint(want) {
				t.Errorf("services = %v, want %v", got.Services, want)
			}
			var attempt *Span
			for i := range got.SpanList {
				if got.SpanList[i].Name == "attempt" {
					attempt = &got.SpanList[i]
				}
			}
			if attempt == nil || attempt.Kind != "client" || attempt.Instance != "api-2-bbbb" ||
				attempt.Attributes["shoal.attempt"] != int64(1) || attempt.Attributes["shoal.instance"] != "catalog-3-cccc" {
				t.Errorf("attempt span = %+v", attempt)
			}
			for i, sp := range got.SpanList {
				if i > 0 && sp.Start.Before(got.SpanList[i-1].Start) {
					t.Errorf("spans not by start time")
				}
				if sp.OffsetMS < 0 || sp.DurationMS < 0 {
					t.Errorf("span %s offset %v duration %v", sp.Name, sp.OffsetMS, sp.DurationMS)
				}
			}
			if lists := store.list(TracesFailed, 0); len(lists) != 1 || lists[0].TraceID != id {
				t.Errorf("failed list = %+v", lists)
			}
			calls := store.callsSince(time.Now().Add(-time.Minute))
			for _, c := range [][2]string{{"gateway", "api"}, {"api", "catalog"}} {
				if !calls[c] {
					t.Errorf("call %v not seen in %v", c, calls)
				}
			}
		})
	}
}

func mustTraceKey(t *testing.T, id string) [16]byte {
	t.Helper()
	var k [16]byte
	if _, err := hex.Decode(k[:], []byte(id)); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOTLPReceiverRefuses(t *testing.T) {
	var stored atomic.Int64
	store, auth := newTraceStore(defaultTraceLimits), newOTLPAuth()
	srv := httptest.NewServer(otlpHandler(store, auth, func() { stored.Add(1) }))
	defer srv.Close()
	good, err := proto.Marshal(exportRequest(1))
	if err != nil {
		t.Fatal(err)
	}
	op := auth.token(otlpAny)
	forged := newOTLPAuth().token(otlpAny)
	for _, tc := range []struct {
		name, method, path, ctype, token string
		body                             []byte
		want                             int
	}{
		{"json", "POST", otlpTracesPath, "application/json", op, []byte("{}"), http.StatusUnsupportedMediaType},
		{"garbage", "POST", otlpTracesPath, "application/x-protobuf", op, []byte{0xff, 0xff, 0xff}, http.StatusBadRequest},
		{"get", "GET", otlpTracesPath, "", op, nil, http.StatusNotFound},
		{"metrics path", "POST", "/v1/metrics", "application/x-protobuf", op, nil, http.StatusNotFound},
		{"no token", "POST", otlpTracesPath, "application/x-protobuf", "", good, http.StatusUnauthorized},
		{"another supervisor's token", "POST", otlpTracesPath, "application/x-protobuf", forged, good, http.StatusUnauthorized},
		{"a token without its MAC", "POST", otlpTracesPath, "application/x-protobuf", "*/*", good, http.StatusUnauthorized},
		{"an instance's token with another's MAC", "POST", otlpTracesPath, "application/x-protobuf",
			"api/api-1-aaaa." + strings.TrimPrefix(op, "*/*."), good, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ctype)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if n, _, _, _ := store.stats(); n != 0 || stored.Load() != 0 {
		t.Errorf("%d traces stored from refused requests, %d calls of stored", n, stored.Load())
	}
}

// TestOTLPPartialSuccess: spans beyond a trace's limit are refused and
// counted in the answer, as the exporter expects.
func TestOTLPPartialSuccess(t *testing.T) {
	lim := defaultTraceLimits
	lim.maxSpans = 2
	store, auth := newTraceStore(lim), newOTLPAuth()
	srv := httptest.NewServer(otlpHandler(store, auth, nil))
	defer srv.Close()
	status, out := export(t, srv.URL, auth.token(otlpAny), exportRequest(3))
	if status != 200 || out.GetPartialSuccess().GetRejectedSpans() != 1 {
		t.Fatalf("status %d, partial success %v", status, out.GetPartialSuccess())
	}
}

// TestOTLPInstanceTokenIsBound: an instance's token stores only the spans
// whose resource names that service and instance, or names neither (they
// are the sender's); the others are refused and counted.
func TestOTLPInstanceTokenIsBound(t *testing.T) {
	store, auth := newTraceStore(defaultTraceLimits), newOTLPAuth()
	srv := httptest.NewServer(otlpHandler(store, auth, nil))
	defer srv.Close()
	req := exportRequest(2) // from api/api-1-aaaa
	for _, from := range []sender{{"catalog", "catalog-1-bbbb"}, {"catalog", "api-1-aaaa"}, {"api", "api-2-cccc"}} {
		status, out := export(t, srv.URL, auth.token(from), req)
		if status != 200 || out.GetPartialSuccess().GetRejectedSpans() != 2 ||
			!strings.Contains(out.GetPartialSuccess().GetErrorMessage(), "another service or instance than the token's ("+from.service+"/"+from.instance+")") {
			t.Errorf("%v's token sent api/api-1-aaaa's spans: status %d, partial success %v", from, status, out.GetPartialSuccess())
		}
	}
	if n, _, _, _ := store.stats(); n != 0 {
		t.Fatalf("%d traces stored from other senders' tokens", n)
	}
	status, out := export(t, srv.URL, auth.token(sender{"api", "api-1-aaaa"}), req)
	if status != 200 || out.GetPartialSuccess() != nil {
		t.Fatalf("api's own token: status %d, partial success %v", status, out.GetPartialSuccess())
	}
	// A resource that names nobody is the sender's.
	req = exportRequest(1)
	req.ResourceSpans[0].Resource = nil
	req.ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId = bytes.Repeat([]byte{8}, 16)
	if status, out := export(t, srv.URL, auth.token(sender{"web", "web-1-dddd"}), req); status != 200 || out.GetPartialSuccess() != nil {
		t.Fatalf("a resource without names: status %d, partial success %v", status, out.GetPartialSuccess())
	}
	got, ok := store.get([16]byte(bytes.Repeat([]byte{8}, 16)))
	if !ok || got.SpanList[0].Service != "web" || got.SpanList[0].Instance != "web-1-dddd" {
		t.Fatalf("the unnamed resource's span: %v %+v", ok, got)
	}
}

// export posts req to the receiver at url with token and returns the
// status and the decoded answer.
func export(t *testing.T, url, token string, req *coltracepb.ExportTraceServiceRequest) (int, *coltracepb.ExportTraceServiceResponse) {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequest(http.MethodPost, url+otlpTracesPath, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out coltracepb.ExportTraceServiceResponse
	buf := new(bytes.Buffer)
	_, _ = buf.ReadFrom(resp.Body)
	if err := proto.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, &out
}

// exportRequest is one trace of n spans from one instance, built by hand.
func exportRequest(n int) *coltracepb.ExportTraceServiceRequest {
	ss := &tracepb.ScopeSpans{}
	now := uint64(time.Now().UnixNano())
	for i := range n {
		ss.Spans = append(ss.Spans, &tracepb.Span{
			TraceId: bytes.Repeat([]byte{7}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i + 1)},
			Name: fmt.Sprint("span", i), StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
		})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "api"}}},
			{Key: "service.instance.id", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "api-1-aaaa"}}},
		}},
		ScopeSpans: []*tracepb.ScopeSpans{ss},
	}}}
}

// span makes a stored span of trace tr: start ms after base, lasting d ms.
func span(tr byte, id byte, start, d int, status string) (Span, [16]byte) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	k := [16]byte{tr}
	st := base.Add(time.Duration(start) * time.Millisecond)
	return Span{TraceID: hex.EncodeToString(k[:]), SpanID: fmt.Sprint(tr, "-", id), Name: "op", Service: "svc",
		Start: st, end: st.Add(time.Duration(d) * time.Millisecond), Status: status}, k
}

func addSpan(s *traceStore, now time.Time, tr, id byte, start, d int, status string) {
	sp, k := span(tr, id, start, d, status)
	s.add([]Span{sp}, [][16]byte{k}, now)
}

func ids(list []TraceSummary) []byte {
	var out []byte
	for _, t := range list {
		b, _ := hex.DecodeString(t.TraceID)
		out = append(out, b[0])
	}
	return out
}

// TestTraceStoreBounds: the last N traces, plus the slowest and failed
// ones of the window, within the byte bound.
func TestTraceStoreBounds(t *testing.T) {
	now := time.Now()
	s := newTraceStore(traceLimits{recent: 3, slowest: 2, failed: 2, window: time.Minute, maxBytes: 1 << 20, maxSpans: 10})
	// Trace 1 is slow, 2 failed, then 3..7 fast and fine.
	addSpan(s, now, 1, 1, 0, 900, "ok")
	addSpan(s, now, 2, 1, 0, 5, "error")
	for tr := byte(3); tr <= 7; tr++ {
		addSpan(s, now, tr, 1, 0, int(tr), "ok")
	}
	if got := ids(s.list(TracesRecent, 0)); fmt.Sprint(got) != "[7 6 5]" {
		t.Errorf("recent = %v, want [7 6 5]", got)
	}
	if got := ids(s.list(TracesSlowest, 0)); fmt.Sprint(got) != "[1 7]" {
		t.Errorf("slowest = %v, want [1 7]", got)
	}
	if got := ids(s.list(TracesFailed, 0)); fmt.Sprint(got) != "[2]" {
		t.Errorf("failed = %v, want [2]", got)
	}
	if n, _, _, _ := s.stats(); n != 5 { // 7 6 5 + 1 (slow) + 2 (failed)
		t.Errorf("%d traces kept, want 5", n)
	}
	// A later span makes trace 6 slower than 7: it takes 7's place.
	addSpan(s, now, 6, 2, 0, 500, "ok")
	if got := ids(s.list(TracesSlowest, 0)); fmt.Sprint(got) != "[1 6]" {
		t.Errorf("slowest after growth = %v, want [1 6]", got)
	}
	// Past the window, slow and failed traces that are not recent go.
	s.expire(now.Add(2 * time.Minute))
	if got := ids(s.list(TracesSlowest, 0)); len(got) != 0 {
		t.Errorf("slowest after the window = %v", got)
	}
	if _, ok := s.get([16]byte{1}); ok {
		t.Error("trace 1 kept after the window")
	}
	if _, ok := s.get([16]byte{7}); !ok {
		t.Error("recent trace 7 dropped by expiry")
	}
	// A full trace refuses further spans.
	for id := byte(2); id < 20; id++ {
		addSpan(s, now, 7, id, 0, 1, "ok")
	}
	if tr, _ := s.get([16]byte{7}); tr.Spans != 10 {
		t.Errorf("trace 7 has %d spans, want the limit 10", tr.Spans)
	}
	if _, _, dropped, _ := s.stats(); dropped != 9 {
		t.Errorf("dropped = %d, want 9", dropped)
	}
}

// TestTraceDurationIsTheRoots: a trace lasts as long as its root span, not
// until a call its root no longer waited for (a losing hedge) ended; it is
// ranked among the slowest by that.
func TestTraceDurationIsTheRoots(t *testing.T) {
	now := time.Now()
	s := newTraceStore(traceLimits{recent: 5, slowest: 1, failed: 1, window: time.Minute, maxBytes: 1 << 20, maxSpans: 10})
	hedge, k := span(1, 2, 10, 300, "ok") // arrives first, ends 310 ms in
	hedge.ParentID = "1-1"
	s.add([]Span{hedge}, [][16]byte{k}, now)
	if tr, _ := s.get(k); tr.DurationMS != 300 {
		t.Errorf("before its root: %v ms, want the spans' extent, 300", tr.DurationMS)
	}
	addSpan(s, now, 1, 1, 0, 100, "ok") // the root: answered in 100 ms
	addSpan(s, now, 2, 1, 0, 150, "ok") // another trace, 150 ms
	if tr, _ := s.get(k); tr.DurationMS != 100 {
		t.Errorf("with its root: %v ms, want the root's 100", tr.DurationMS)
	}
	if got := ids(s.list(TracesSlowest, 0)); fmt.Sprint(got) != "[2]" {
		t.Errorf("slowest = %v, want [2] (150 ms against 100)", got)
	}
}

// TestFailedByStart: failed traces are listed newest first by when they
// began, not by when their failure arrived.
func TestFailedByStart(t *testing.T) {
	now := time.Now()
	s := newTraceStore(traceLimits{recent: 5, slowest: 1, failed: 5, window: time.Minute, maxBytes: 1 << 20, maxSpans: 10})
	addSpan(s, now, 2, 1, 100, 5, "error")
	addSpan(s, now, 3, 1, 200, 5, "error")
	addSpan(s, now, 1, 1, 0, 5000, "error") // began first, its failure arrived last (a timeout)
	if got := ids(s.list(TracesFailed, 0)); fmt.Sprint(got) != "[3 2 1]" {
		t.Errorf("failed = %v, want [3 2 1]", got)
	}
}

func TestTraceStoreByteBound(t *testing.T) {
	now := time.Now()
	one, _ := span(1, 1, 0, 1, "ok")
	size := spanSize(&one)
	s := newTraceStore(traceLimits{recent: 100, slowest: 100, failed: 100, window: time.Minute, maxBytes: 10 * size, maxSpans: 100})
	for tr := byte(1); tr <= 30; tr++ {
		addSpan(s, now, tr, 1, 0, int(tr), "error")
	}
	n, bytes, _, _ := s.stats()
	if bytes > 10*size || n == 0 || n > 10 {
		t.Fatalf("%d traces in %d bytes, bound %d", n, bytes, 10*size)
	}
	// The newest survive.
	if _, ok := s.get([16]byte{30}); !ok {
		t.Error("newest trace evicted")
	}
}

// TestCanceledCallIsNoFailure: a call its caller canceled (a sibling call
// failed first, its own caller left) does not make its trace a failed one;
// a call that failed does.
func TestCanceledCallIsNoFailure(t *testing.T) {
	store, auth := newTraceStore(defaultTraceLimits), newOTLPAuth()
	srv := httptest.NewServer(otlpHandler(store, auth, nil))
	defer srv.Close()
	api := exporterTo(t, srv.URL, auth.token(sender{"api", "api-1-aaaa"}), "api", "api-1-aaaa").Tracer("t")
	traceWithCall := func(outcome string) string {
		ctx, root := api.Start(context.Background(), "GET /titles/9", trace.WithSpanKind(trace.SpanKindServer))
		_, call := api.Start(ctx, "GET ratings", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("shoal.outcome", outcome)))
		call.SetStatus(codes.Error, `service "ratings": 1 attempt failed`)
		call.End()
		root.End()
		return root.SpanContext().TraceID().String()
	}
	canceled, failed := traceWithCall("canceled"), traceWithCall("503")
	for id, want := range map[string]int{canceled: 0, failed: 1} {
		if got, ok := store.get(mustTraceKey(t, id)); !ok || got.Errors != want {
			t.Errorf("trace %s: stored %v, %d errors, want %d", id, ok, got.Errors, want)
		}
	}
	if l := store.list(TracesFailed, 0); len(l) != 1 || l[0].TraceID != failed {
		t.Errorf("failed traces %+v, want only %s", l, failed)
	}
}
