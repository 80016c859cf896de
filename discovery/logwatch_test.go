package discovery

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogWatch is a slog.Handler that records what the code under test logs,
// so that a test can count its warnings, read its messages or wait for
// one. It is exported for the external tests.
type LogWatch struct {
	mu     sync.Mutex
	counts map[string]int
	text   strings.Builder // the messages, a line each
	warns  int             // records at Warn or above
	change chan struct{}   // closed and replaced on every record
}

// NewLogWatch returns an empty LogWatch.
func NewLogWatch() *LogWatch {
	return &LogWatch{counts: map[string]int{}, change: make(chan struct{})}
}

func (h *LogWatch) Enabled(context.Context, slog.Level) bool { return true }
func (h *LogWatch) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *LogWatch) WithGroup(string) slog.Handler            { return h }
func (h *LogWatch) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Message]++
	if r.Level >= slog.LevelWarn {
		h.warns++
	}
	h.text.WriteString(r.Message + "\n")
	close(h.change)
	h.change = make(chan struct{})
	return nil
}

// Warns is the number of records at Warn or above.
func (h *LogWatch) Warns() int { h.mu.Lock(); defer h.mu.Unlock(); return h.warns }

// Text is the messages logged, a line each.
func (h *LogWatch) Text() string { h.mu.Lock(); defer h.mu.Unlock(); return h.text.String() }

// WaitFor blocks until msg has been logged at least n times, and fails t
// if that takes longer than timeout.
func (h *LogWatch) WaitFor(t *testing.T, msg string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		got, change := h.counts[msg], h.change
		h.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-change:
		case <-deadline:
			t.Fatalf("%q logged %d times in %v, want %d", msg, got, timeout, n)
		}
	}
}
