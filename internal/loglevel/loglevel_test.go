package loglevel

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

func TestFailure(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	late, cancelLate := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelLate()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want slog.Level
	}{
		{"waiting", context.Background(), slog.LevelError},
		{"left", canceled, slog.LevelDebug},
		{"deadline passed", late, slog.LevelWarn},
	} {
		if got := Failure(tt.ctx); got != tt.want {
			t.Errorf("%s: Failure = %v, want %v", tt.name, got, tt.want)
		}
	}
}
