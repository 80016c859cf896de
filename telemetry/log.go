package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
)

// Keys of the attributes NewLogHandler adds. shoal logs --trace matches
// trace_id.
const (
	LogTraceID   = "trace_id"
	LogSpanID    = "span_id"
	LogRequestID = "request_id"
)

// NewLogHandler returns a handler that writes what h writes, plus, for a
// record logged with a request's context (slog.InfoContext,
// Logger.LogAttrs...), the request's trace_id and span_id (of the span
// current in the context) and its request_id: the keys that tie a log line
// to its trace and to the other services' lines about the same request. A
// record that sets one of those keys itself keeps its own. Wrapping a
// handler it returned returns it as is.
//
// The attributes go where the record's go: inside the logger's group, if
// it has one (slog.Logger.WithGroup).
func NewLogHandler(h slog.Handler) slog.Handler {
	if lh, ok := h.(*logHandler); ok {
		return lh
	}
	return &logHandler{next: h}
}

type logHandler struct{ next slog.Handler }

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return h.next.Handle(ctx, r)
	}
	sc := trace.SpanContextFromContext(ctx)
	id := client.RequestID(ctx)
	if !sc.IsValid() && id == "" {
		return h.next.Handle(ctx, r)
	}
	var has [3]bool // trace_id, span_id, request_id set by the record
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case LogTraceID:
			has[0] = true
		case LogSpanID:
			has[1] = true
		case LogRequestID:
			has[2] = true
		}
		return true
	})
	r = r.Clone() // the caller's record may share its attributes' storage
	if sc.IsValid() && !has[0] {
		r.AddAttrs(slog.String(LogTraceID, sc.TraceID().String()))
	}
	if sc.IsValid() && !has[1] {
		r.AddAttrs(slog.String(LogSpanID, sc.SpanID().String()))
	}
	if id != "" && !has[2] {
		r.AddAttrs(slog.String(LogRequestID, id))
	}
	return h.next.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{next: h.next.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{next: h.next.WithGroup(name)}
}
