package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
)

func TestLogHandler(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 1}, SpanID: trace.SpanID{0xb7, 2}, TraceFlags: trace.FlagsSampled,
	})
	traced := client.WithRequestID(trace.ContextWithSpanContext(context.Background(), sc), "req-9")
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		log   func(l *slog.Logger, ctx context.Context)
		group string // where the keys are
		want  map[string]string
	}{
		{name: "request context", ctx: traced, log: func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi") },
			want: map[string]string{LogTraceID: sc.TraceID().String(), LogSpanID: sc.SpanID().String(), LogRequestID: "req-9"}},
		{name: "no context", ctx: context.Background(), log: func(l *slog.Logger, ctx context.Context) { l.Info("hi") },
			want: map[string]string{}},
		{name: "request ID only", ctx: client.WithRequestID(context.Background(), "req-1"),
			log:  func(l *slog.Logger, ctx context.Context) { l.WarnContext(ctx, "hi") },
			want: map[string]string{LogRequestID: "req-1"}},
		{name: "record's own key wins", ctx: traced,
			log:  func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "hi", LogRequestID, "mine") },
			want: map[string]string{LogTraceID: sc.TraceID().String(), LogSpanID: sc.SpanID().String(), LogRequestID: "mine"}},
		{name: "in the logger's group", ctx: traced, group: "g",
			log:  func(l *slog.Logger, ctx context.Context) { l.With("a", 1).WithGroup("g").InfoContext(ctx, "hi") },
			want: map[string]string{LogTraceID: sc.TraceID().String(), LogSpanID: sc.SpanID().String(), LogRequestID: "req-9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil)))
			tc.log(l, tc.ctx)
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.Bytes())
			}
			if tc.group != "" {
				line, _ = line[tc.group].(map[string]any)
			}
			for _, k := range []string{LogTraceID, LogSpanID, LogRequestID} {
				got, _ := line[k].(string)
				if got != tc.want[k] {
					t.Errorf("%s = %q, want %q (line %s)", k, got, tc.want[k], buf.Bytes())
				}
			}
		})
	}
}

func TestNewLogHandlerWrapsOnce(t *testing.T) {
	h := NewLogHandler(slog.NewJSONHandler(&bytes.Buffer{}, nil))
	if NewLogHandler(h) != h {
		t.Fatal("wrapping a log handler again made a new one")
	}
}
