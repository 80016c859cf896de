package shoal

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The drain ends the workers' context after the last in-flight request has
// finished, and waits for them before it returns.
func TestWorkersStopAfterRequestsInFlight(t *testing.T) {
	verifyNoLeaks(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var rt Router
	rt.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.WriteHeader(http.StatusNoContent)
	})
	svc, err := New(Config{Name: "workers", Logger: slog.New(slog.DiscardHandler)}, &rt)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	started := make(chan struct{})
	svc.Go("watcher", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		note("worker stopped")
		return ctx.Err() // its own context's end is not a failure
	})
	cancel, done := run(t, svc)
	<-started // a worker given before Run starts once it serves
	if n := svc.Info().Workers.Running; n != 1 {
		t.Fatalf("%d workers running, want 1", n)
	}

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + svc.Addr() + "/slow")
		if err != nil {
			t.Error(err)
			answered <- 0
			return
		}
		resp.Body.Close()
		note("request answered")
		answered <- resp.StatusCode
	}()
	<-entered
	cancel() // SIGTERM, with a request in flight
	waitUntil(t, "the drain to begin", svc.draining.Load)
	// The worker must run on while the request does: a window for a
	// wrong order to show, not a synchronization (nothing to wait for).
	time.Sleep(50 * time.Millisecond)
	note("request released")
	close(release)
	if code := <-answered; code != http.StatusNoContent {
		t.Fatalf("request in flight answered %d", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "request released,request answered,worker stopped"; strings.Join(order, ",") != want {
		t.Fatalf("order %v, want %s", order, want)
	}
	if st := svc.Info().Workers; st != (WorkerStats{}) {
		t.Fatalf("worker stats after drain %+v, want all zero", st)
	}
}

// A panic in a worker is recovered, logged and counted: the service serves
// on. An error is logged and counted too.
func TestWorkerPanicAndError(t *testing.T) {
	verifyNoLeaks(t)
	logs := newLogRecorder()
	var rt Router
	rt.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	svc, err := New(Config{Name: "panicky", Logger: logs.logger()}, &rt)
	if err != nil {
		t.Fatal(err)
	}
	svc.Go("bomb", func(context.Context) error { panic("boom") })
	svc.Go("broken", func(context.Context) error { return errors.New("disk on fire") })
	run(t, svc)
	waitUntil(t, "both workers to end", func() bool { return svc.Info().Workers.Running == 0 })
	if st := svc.Info().Workers; st.Panicked != 1 || st.Failed != 1 {
		t.Fatalf("worker stats %+v, want 1 panicked and 1 failed", st)
	}
	if resp, _ := get(t, http.DefaultClient, "http://"+svc.Addr()+"/ok"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("after the panic GET /ok = %d", resp.StatusCode)
	}
	metrics := metricsOf(t, svc)
	for _, want := range []string{"shoal_worker_panics_total 1", "shoal_worker_failures_total 1", "shoal_workers_running 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	out := logs.text()
	for _, want := range []string{"ERROR worker panicked", "worker=bomb panic=boom stack=goroutine", "worker=broken err=disk on fire"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}

	// A worker given while the service runs starts at once.
	ran := make(chan struct{})
	svc.Go("late", func(context.Context) error { close(ran); return nil })
	<-ran
}

// The drain waits for the workers until its deadline, not longer: a worker
// that ignores its context is left behind and logged. Workers given once
// the drain has begun are not started.
func TestWorkersBoundedWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newLogRecorder()
		ws := workers{log: logs.logger()}
		stuck := make(chan struct{})
		ws.add("stubborn", func(context.Context) error { <-stuck; return nil })
		ws.add("polite", func(ctx context.Context) error { <-ctx.Done(); return nil })
		ws.start(context.Background())
		synctest.Wait()
		if n := ws.running.Load(); n != 2 {
			t.Fatalf("%d running, want 2", n)
		}
		begin := time.Now()
		ws.stop(begin.Add(3 * time.Second))
		if waited := time.Since(begin); waited != 3*time.Second {
			t.Errorf("stop waited %v, want the 3s to its deadline", waited)
		}
		if n, out := ws.running.Load(), logs.text(); n != 1 || !strings.Contains(out, "left behind running=1") {
			t.Errorf("%d running; log:\n%s", n, out)
		}
		ws.add("too late", func(context.Context) error { t.Error("started during the drain"); return nil })
		if out := logs.text(); !strings.Contains(out, "WARN worker not started: the service is draining worker=too late") {
			t.Errorf("a worker refused during the drain is not logged:\n%s", out)
		}
		close(stuck)
		synctest.Wait()
		if n := ws.running.Load(); n != 0 {
			t.Errorf("%d running after the stuck one ended", n)
		}
	})
}

// A drain that finds every worker gone at once does not wait.
func TestWorkersStopPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ws := workers{log: slog.New(slog.DiscardHandler)}
		ws.add("polite", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		ws.start(context.Background())
		begin := time.Now()
		ws.stop(begin.Add(time.Hour))
		if waited := time.Since(begin); waited != 0 {
			t.Errorf("stop waited %v", waited)
		}
		if st := ws.stats(); st != (WorkerStats{}) {
			t.Errorf("stats %+v: a worker ending with its context's error did not fail", st)
		}
	})
}

func TestGoNil(t *testing.T) {
	svc, err := New(Config{Name: "x", Logger: slog.New(slog.DiscardHandler)}, &Router{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Go(nil) did not panic")
		}
	}()
	svc.Go("nil", nil)
}

// waitUntil polls cond every 10ms for up to 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
