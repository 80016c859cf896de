package supervisor

import (
	"cmp"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpTracesPath is where OTLP/HTTP exporters send spans: the SDK appends
// it to OTEL_EXPORTER_OTLP_ENDPOINT.
const otlpTracesPath = "/v1/traces"

// otlpMaxBody bounds one export request, after decompression. The OTel
// SDK's batch span processor sends at most 512 spans at a time, a few
// hundred KiB.
const otlpMaxBody = 16 << 20

// Limits of what one span keeps: a span with more is cut, not refused.
const (
	maxSpanAttrs  = 64
	maxSpanEvents = 32
	maxAttrValue  = 4 << 10 // bytes of one string value
)

// otlpHandler receives OTLP/HTTP trace exports (binary protobuf, plain or
// gzip) bearing a token of auth, stores their spans and then calls stored
// (if not nil). It answers as the OTLP specification asks: 200 with an
// ExportTraceServiceResponse, whose partial_success counts the spans
// refused (for lack of room, or of another sender than the token's); 400
// for a body that does not decode (the exporter does not retry it); 401
// without a valid token; 415 for another content type.
func otlpHandler(store *traceStore, auth *otlpAuth, stored func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != otlpTracesPath {
			http.Error(w, "OTLP/HTTP: POST "+otlpTracesPath, http.StatusNotFound)
			return
		}
		from, ok := auth.verify(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shoal-otlp"`)
			http.Error(w, "OTLP/HTTP: send the token shoal up gives (OTEL_EXPORTER_OTLP_TRACES_HEADERS, or the state file's otlp_token)", http.StatusUnauthorized)
			return
		}
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-protobuf" {
			http.Error(w, "OTLP/HTTP: send application/x-protobuf (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)", http.StatusUnsupportedMediaType)
			return
		}
		body, err := readOTLPBody(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, "OTLP/HTTP: "+err.Error(), http.StatusBadRequest)
			return
		}
		spans, ids, invalid, foreign := spansOf(&req, from)
		full := store.add(spans, ids, time.Now())
		if stored != nil {
			stored()
		}
		var resp coltracepb.ExportTraceServiceResponse
		if refused := invalid + foreign + full; refused > 0 {
			var why []string
			if foreign > 0 {
				why = append(why, fmt.Sprintf("%d of another service or instance than the token's (%s/%s)", foreign, from.service, from.instance))
			}
			if invalid+full > 0 {
				why = append(why, "shoal up keeps a bounded number of spans per trace and in all; the rest were dropped")
			}
			resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(refused), ErrorMessage: strings.Join(why, "; ")}
		}
		b, _ := proto.Marshal(&resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(b)
	})
}

func readOTLPBody(r *http.Request) ([]byte, error) {
	var src io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP: gzip body: %w", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, fmt.Errorf("OTLP/HTTP: content encoding %q: want gzip or none", enc)
	}
	b, err := io.ReadAll(io.LimitReader(src, otlpMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("OTLP/HTTP: read body: %w", err)
	}
	if len(b) > otlpMaxBody {
		return nil, fmt.Errorf("OTLP/HTTP: body over %d bytes", otlpMaxBody)
	}
	return b, nil
}

// spansOf converts an export request from the sender its token was made
// for: a resource that names no service or instance is the sender's;
// foreign counts the spans of a resource that names another (unless the
// sender is otlpAny), invalid those without a valid trace or span ID. Both
// are left out.
func spansOf(req *coltracepb.ExportTraceServiceRequest, from sender) (spans []Span, ids [][16]byte, invalid, foreign int) {
	for _, rs := range req.GetResourceSpans() {
		var service, instance string
		for _, kv := range rs.GetResource().GetAttributes() {
			switch kv.GetKey() {
			case "service.name":
				service = kv.GetValue().GetStringValue()
			case "service.instance.id":
				instance = kv.GetValue().GetStringValue()
			}
		}
		if from != otlpAny {
			service, instance = cmp.Or(service, from.service), cmp.Or(instance, from.instance)
		}
		for _, ss := range rs.GetScopeSpans() {
			if from != otlpAny && (service != from.service || instance != from.instance) {
				foreign += len(ss.GetSpans())
				continue
			}
			for _, ps := range ss.GetSpans() {
				if len(ps.GetTraceId()) != 16 || len(ps.GetSpanId()) != 8 {
					invalid++
					continue
				}
				spans = append(spans, spanOf(ps, service, instance))
				ids = append(ids, [16]byte(ps.GetTraceId()))
			}
		}
	}
	return spans, ids, invalid, foreign
}

func spanOf(ps *tracepb.Span, service, instance string) Span {
	start := time.Unix(0, int64(ps.GetStartTimeUnixNano()))
	end := time.Unix(0, int64(ps.GetEndTimeUnixNano()))
	if end.Before(start) {
		end = start
	}
	sp := Span{
		TraceID:    hex.EncodeToString(ps.GetTraceId()),
		SpanID:     hex.EncodeToString(ps.GetSpanId()),
		Name:       ps.GetName(),
		Kind:       spanKind(ps.GetKind()),
		Service:    service,
		Instance:   instance,
		Start:      start,
		DurationMS: ms(end.Sub(start)),
		Status:     "unset",
		Attributes: attrs(ps.GetAttributes(), maxSpanAttrs),
		end:        end,
	}
	if len(ps.GetParentSpanId()) == 8 {
		sp.ParentID = hex.EncodeToString(ps.GetParentSpanId())
	}
	switch ps.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_OK:
		sp.Status = "ok"
	case tracepb.Status_STATUS_CODE_ERROR:
		sp.Status = "error"
		sp.StatusMessage = truncate(ps.GetStatus().GetMessage())
	}
	for i, ev := range ps.GetEvents() {
		if i == maxSpanEvents {
			break
		}
		sp.Events = append(sp.Events, SpanEvent{
			Name:       ev.GetName(),
			Time:       time.Unix(0, int64(ev.GetTimeUnixNano())),
			Attributes: attrs(ev.GetAttributes(), maxSpanAttrs),
		})
	}
	return sp
}

func spanKind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "internal"
}

// attrs converts at most limit attributes to JSON-friendly values.
func attrs(kvs []*commonpb.KeyValue, limit int) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, min(len(kvs), limit))
	for _, kv := range kvs {
		if len(m) == limit {
			break
		}
		m[kv.GetKey()] = value(kv.GetValue(), 0)
	}
	return m
}

// value converts an attribute value; depth bounds nested arrays and maps.
func value(v *commonpb.AnyValue, depth int) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return truncate(x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return truncate(hex.EncodeToString(x.BytesValue))
	case *commonpb.AnyValue_ArrayValue:
		if depth > 2 {
			return "[…]"
		}
		var out []any
		for i, e := range x.ArrayValue.GetValues() {
			if i == maxSpanAttrs {
				break
			}
			out = append(out, value(e, depth+1))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		if depth > 2 {
			return "{…}"
		}
		out := map[string]any{}
		for i, kv := range x.KvlistValue.GetValues() {
			if i == maxSpanAttrs {
				break
			}
			out[kv.GetKey()] = value(kv.GetValue(), depth+1)
		}
		return out
	}
	return nil
}

func truncate(s string) string {
	if len(s) <= maxAttrValue {
		return s
	}
	return strings.ToValidUTF8(s[:maxAttrValue], "") + "…"
}
