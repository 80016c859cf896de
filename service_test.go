package shoal

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
)

// start runs a service until the test ends and waits for it to serve. Its
// logs are discarded unless cfg has a Logger.
func start(t *testing.T, cfg Config, h http.Handler) (*Service, context.CancelFunc, <-chan error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := run(t, svc)
	return svc, cancel, done
}

// run runs svc until the test ends, and returns once it is ready: with
// the cancel that begins its drain, and the channel Run's result comes on.
func run(t *testing.T, svc *Service) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		done <- svc.Run(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(15 * time.Second):
			t.Error("service did not stop")
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready after 10s")
	}
	return cancel, done
}

func TestAdminEndpoints(t *testing.T) {
	svc, _, _ := start(t, Config{Name: "admin", Version: "v1"}, http.NotFoundHandler())
	admin := "http://" + svc.AdminAddr()
	if svc.AdminAddr() == "" || svc.AdminAddr() == svc.Addr() {
		t.Fatalf("admin address %q, want a listener of its own (service on %s)", svc.AdminAddr(), svc.Addr())
	}
	for _, tt := range []struct {
		base, path string
		want       int
	}{
		{admin, PathHealth, 200}, {admin, PathReady, 200}, {admin, PathInfo, 200}, {admin, PathMetrics, 200},
		// Profiles need an operator's token, which an instance without
		// the operator's key cannot check (admin_test.go).
		{admin, PathPprof, 403}, {admin, PathPprof + "goroutine?debug=1", 403}, {admin, "/other", 404},
		// The service's listener serves the handler only: never an admin
		// path (this handler answers 404 to everything).
		{"http://" + svc.Addr(), PathHealth, 404}, {"http://" + svc.Addr(), PathMetrics, 404},
		{"http://" + svc.Addr(), PathPprof, 404},
	} {
		resp, _ := get(t, http.DefaultClient, tt.base+tt.path)
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s%s = %d, want %d", tt.base, tt.path, resp.StatusCode, tt.want)
		}
	}
	resp, err := http.Get(admin + PathInfo)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info Info
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "admin" || info.Version != "v1" || info.Addr != svc.Addr() || info.Admin != svc.AdminAddr() || info.Members != 1 || info.Services["admin"] != 1 || info.State != "serving" || info.Requests != 3 {
		t.Fatalf("info = %+v", info)
	}

	svc.draining.Store(true) // as during drain, before the listener closes
	rec := httptest.NewRecorder()
	svc.admin.ServeHTTP(rec, httptest.NewRequest("GET", PathReady, nil))
	if rec.Code != 503 {
		t.Fatalf("readyz while draining = %d, want 503", rec.Code)
	}
	rec = httptest.NewRecorder()
	svc.admin.ServeHTTP(rec, httptest.NewRequest("GET", PathHealth, nil))
	if rec.Code != 200 {
		t.Fatalf("healthz while draining = %d, want 200", rec.Code)
	}
	rec = httptest.NewRecorder()
	svc.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Header().Get("Connection") != "close" {
		t.Fatal("draining instance does not ask callers to close connections")
	}
	svc.draining.Store(false)
}

func TestDeadlineHeaderBecomesContextDeadline(t *testing.T) {
	got := make(chan time.Duration, 1)
	svc, _, _ := start(t, Config{Name: "deadline"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := r.Context().Deadline()
		if !ok {
			got <- -1
			return
		}
		got <- time.Until(dl)
		if r.Header.Get(RequestIDHeader) == "" {
			t.Error("handler saw no request ID")
		}
	}))
	req, _ := http.NewRequest("GET", "http://"+svc.Addr()+"/x", nil)
	req.Header.Set(client.TimeoutHeader, "250")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get(RequestIDHeader) == "" {
		t.Error("response carries no request ID")
	}
	if d := <-got; d <= 0 || d > 250*time.Millisecond {
		t.Fatalf("handler deadline in %v, want within 250ms", d)
	}
}

// A handler that gives up when its caller's deadline passes and answers
// nothing must not look like a success: the SDK answers 504 for it, so a
// caller whose own timer has not fired yet does not take net/http's empty
// 200 for the answer. A handler that answered keeps its answer.
func TestSilentHandlerPastItsDeadlineIs504(t *testing.T) {
	svc, _, _ := start(t, Config{Name: "silent"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		if r.URL.Path == "/answers" {
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	for path, want := range map[string]int{"/silent": http.StatusGatewayTimeout, "/answers": http.StatusAccepted} {
		req, _ := http.NewRequest("GET", "http://"+svc.Addr()+path, nil)
		req.Header.Set(client.TimeoutHeader, "50")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d %s, want %d", path, resp.StatusCode, b, want)
		}
	}
}

func TestDrainFinishesInFlightRequests(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	svc, cancel, done := start(t, Config{Name: "drainer", DrainTimeout: 5 * time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	}))
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + svc.Addr() + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-entered
	cancel() // SIGTERM, as far as Run is concerned
	// The request stays in flight until the listener is closed: the drain
	// must have gone all the way to Shutdown and still wait for it.
	waitUntil(t, "the drain to close the listener", func() bool { return refuses(svc.Addr()) })
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request got %q, want finished", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after a clean drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after drain")
	}
}

func TestDrainStaysWithinTimeout(t *testing.T) {
	entered := make(chan struct{})
	svc, cancel, done := start(t, Config{Name: "stuck", DrainTimeout: 2 * time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // never finishes on its own
	}))
	go http.Get("http://" + svc.Addr() + "/hang")
	<-entered
	begin := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run = nil although a request was cut off")
		}
		// The margin is for a loaded machine's scheduling; a drain that
		// ignored its timeout would wait for the stuck request forever.
		if took := time.Since(begin); took > 3*time.Second {
			t.Fatalf("drain took %v, over its 2s timeout", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestServicesFindEachOther(t *testing.T) {
	a, _, _ := start(t, Config{Name: "alpha"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from alpha")
	}))
	seed := a.member.Load().GossipAddr()
	b, _, _ := start(t, Config{Name: "beta", Seeds: []string{seed}}, http.NotFoundHandler())
	waitUntil(t, "beta to see alpha", func() bool { return len(b.Instances("alpha")) > 0 })
	resp, err := b.Client().Get("http://alpha/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from alpha" {
		t.Fatalf("body %q", body)
	}
}

func TestRunTwice(t *testing.T) {
	svc, _, _ := start(t, Config{Name: "once"}, http.NotFoundHandler())
	if err := svc.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}
