package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// A panic in Async's fn or fallback is recovered, logged with its stack,
// counted, and becomes a degraded answer: fn's panic reaches the fallback
// as a *PanicError.
func TestAsyncPanics(t *testing.T) {
	var logs bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	tests := []struct {
		name     string
		fn       func(context.Context) (string, error)
		fallback func(error) string
		want     string
	}{
		{"in fn", func(context.Context) (string, error) { panic("boom in fn") }, func(err error) string {
			var pe *PanicError
			if !errors.As(err, &pe) || pe.Value != "boom in fn" || !bytes.Contains(pe.Stack, []byte("TestAsyncPanics")) {
				t.Errorf("fallback got %#v, want a *PanicError with the panic's value and stack", err)
			}
			return "stale: " + err.Error()
		}, "stale: panic: boom in fn"},
		{"in fallback", func(context.Context) (string, error) { return "", errors.New("down") },
			func(error) string { panic("boom in fallback") }, ""},
		{"in fn, no fallback", func(context.Context) (string, error) { panic(errors.New("boom")) }, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			before := AsyncPanics()
			got, degraded := Async(t.Context(), time.Second, tt.fn, tt.fallback)()
			if got != tt.want || !degraded {
				t.Errorf("Async = %q, %v; want %q, degraded", got, degraded, tt.want)
			}
			if n := AsyncPanics() - before; n != 1 {
				t.Errorf("AsyncPanics went up by %d, want 1", n)
			}
			var line struct{ Msg, Panic, Stack string }
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil || !strings.Contains(line.Panic, "boom") ||
				!strings.Contains(line.Stack, "fallback_test.go") {
				t.Errorf("log %s (%v): want the panic and its stack", logs.Bytes(), err)
			}
		})
	}
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

// TestGetJSONReusesConnection: GetJSON reads each answer to its end, so
// that calls in turn share one connection, whether the answer is chunked
// (the decoder stops before the last chunk) or an error status (its body
// is not decoded at all).
func TestGetJSONReusesConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, strings.Repeat("no such thing ", 100), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"n": 7}`)
		w.(http.Flusher).Flush() // chunked from here: no Content-Length
		io.WriteString(w, "\n")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	for i := range 3 {
		var v struct{ N int }
		if err := GetJSON(context.Background(), c, srv.URL+"/x", 1<<10, &v); err != nil || v.N != 7 {
			t.Fatalf("call %d: GetJSON = %v, %+v", i, err, v)
		}
		var se *StatusError
		if err := GetJSON(context.Background(), c, srv.URL+"/missing", 1<<10, &v); !errors.As(err, &se) || se.Code != 404 {
			t.Fatalf("call %d: missing: err = %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("6 calls in turn opened %d connections, want 1", n)
	}
}
