package shoal

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// What a program prepares runs before the instance serves, in order: here
// the routes are registered with the service's client at hand.
func TestPrepare(t *testing.T) {
	verifyNoLeaks(t)
	var rt Router
	var order []string
	svc, err := New(Config{Name: "prep", Logger: slog.New(slog.DiscardHandler)}, &rt)
	if err != nil {
		t.Fatal(err)
	}
	svc.Prepare(func(ctx context.Context) error {
		order = append(order, "open")
		return nil
	})
	svc.Prepare(func(ctx context.Context) error {
		order = append(order, "routes")
		c := svc.Client()
		rt.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, map[string]bool{"client": c != nil})
		})
		return nil
	})
	cancel, done := run(t, svc)
	if got := send(svc, "GET", "/ping"); got.status != 200 || strings.Join(order, ",") != "open,routes" {
		t.Errorf("GET /ping = %d %s after %v", got.status, got.body, order)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Prepare after Run did not panic")
		}
	}()
	svc.Prepare(func(context.Context) error { return nil })
}

func TestPrepareFails(t *testing.T) {
	verifyNoLeaks(t)
	boom := errors.New("database unreachable")
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tt := range []struct {
		name    string
		prepare func(ctx context.Context) error
		cancel  bool
		want    error // nil: Run returns nil
		wantMsg string
	}{
		{"error", func(context.Context) error { return boom }, false, boom, "shoal: prepare: database unreachable"},
		// SIGTERM while preparing: stopped before serving, not failed.
		{"stopped", hang, true, nil, ""},
		{"timeout", hang, false, context.DeadlineExceeded, "preparing took longer than the prepare timeout of 50ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := New(Config{Name: "prep", PrepareTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}, &Router{})
			if err != nil {
				t.Fatal(err)
			}
			ran := false
			svc.Prepare(tt.prepare)
			svc.Prepare(func(context.Context) error { ran = true; return nil })
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			err = svc.Run(ctx)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || ran || err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Run = %v (next prepare ran: %v), want %v: %s", err, ran, tt.want, tt.wantMsg)
			}
			if svc.Addr() != "" {
				t.Error("listened although preparing failed")
			}
		})
	}
}

func TestLogger(t *testing.T) {
	logs := newLogRecorder()
	svc, err := New(Config{Name: "logs", ID: "logs-7", Logger: logs.logger()}, &Router{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Logger().Info("hello")
	if out := logs.text(); out != "INFO hello service=logs instance=logs-7" {
		t.Errorf("log %q", out)
	}
}
