package shoal

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logRecorder is a slog.Handler that keeps every record as a line of text,
// "LEVEL message key=value ...", the attributes of With included. Handlers
// derived with WithAttrs share the lines. Safe for concurrent use.
type logRecorder struct {
	shared *recorded
	attrs  string // of the logger's With, rendered
}

type recorded struct {
	mu    sync.Mutex
	lines []string
}

func newLogRecorder() *logRecorder { return &logRecorder{shared: new(recorded)} }

// logger returns a logger that records into h.
func (h *logRecorder) logger() *slog.Logger { return slog.New(h) }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message + h.attrs
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	h.shared.mu.Lock()
	h.shared.lines = append(h.shared.lines, line)
	h.shared.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	derived := *h
	for _, a := range as {
		derived.attrs += " " + a.String()
	}
	return &derived
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// text returns the lines recorded so far, and forgets them.
func (h *logRecorder) text() string {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	all := strings.Join(h.shared.lines, "\n")
	h.shared.lines = nil
	return all
}
