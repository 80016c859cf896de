package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

func TestFallback(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name         string
		fn           func(context.Context) (string, error)
		fallback     func(error) string
		want         string
		wantDegraded bool
	}{
		{"answers", func(context.Context) (string, error) { return "fresh", nil }, func(error) string { return "stale" }, "fresh", false},
		{"fails", func(context.Context) (string, error) { return "", boom }, func(err error) string { return "stale: " + err.Error() }, "stale: boom", true},
		{"runs out of time", func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, func(err error) string { return "stale: " + err.Error() }, "stale: context deadline exceeded", true},
		{"no fallback", func(context.Context) (string, error) { return "partial", boom }, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				got, degraded := Fallback(context.Background(), 100*time.Millisecond, tt.fn, tt.fallback)
				if got != tt.want || degraded != tt.wantDegraded {
					t.Errorf("Fallback = %q, %v; want %q, %v", got, degraded, tt.want, tt.wantDegraded)
				}
				if d := time.Since(start); d > 100*time.Millisecond {
					t.Errorf("took %v, budget 100ms", d)
				}
			})
		})
	}
}

func TestFallbackLeavesRoomForTheAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		wait := Async(ctx, time.Second, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}, func(error) int { return -1 })
		v, degraded := wait()
		// A tenth of the caller's 200 ms stays for answering with -1.
		if v != -1 || !degraded {
			t.Fatalf("= %d, %v", v, degraded)
		}
		if left := time.Until(mustDeadline(t, ctx)); left != 20*time.Millisecond {
			t.Errorf("fallback answered with %v left, want 20ms", left)
		}
	})
}

func mustDeadline(t *testing.T, ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	return dl
}

func TestGetJSON(t *testing.T) {
	f := newFleet(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"n": 7}`))
	})
	c := newTransport(t, f, Config{}).Client()
	var v struct{ N int }
	if err := GetJSON(context.Background(), c, "http://svc/x", 1<<10, &v); err != nil || v.N != 7 {
		t.Fatalf("GetJSON = %v, %+v", err, v)
	}
	var se *StatusError
	if err := GetJSON(context.Background(), c, "http://svc/missing", 1<<10, &v); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("missing: err = %v", err)
	}
}
