package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/handoff/handofftest"
	"github.com/shoal-dev/shoal/resilience"
)

// resolverFunc adapts a function to Resolver.
type resolverFunc func(string) []discovery.Instance

func (f resolverFunc) Instances(s string) []discovery.Instance { return f(s) }

// fleet is a set of instances of service "svc" backed by test servers.
type fleet struct {
	instances []discovery.Instance
	hits      []atomic.Int64
}

func (f *fleet) Instances(service string) []discovery.Instance {
	if service != "svc" {
		return nil
	}
	return f.instances
}

// newFleet starts one server per handler; a nil handler stands for a dead
// instance (an address that refuses connections).
func newFleet(t *testing.T, handlers ...http.HandlerFunc) *fleet {
	t.Helper()
	f := &fleet{hits: make([]atomic.Int64, len(handlers))}
	for i, h := range handlers {
		id := fmt.Sprintf("svc-%d", i)
		var addr string
		if h == nil {
			addr = handofftest.Refused(t)
		} else {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f.hits[i].Add(1)
				h(w, r)
			}))
			t.Cleanup(srv.Close)
			addr = srv.Listener.Addr().String()
		}
		f.instances = append(f.instances, discovery.Instance{ID: id, Service: "svc", Addr: addr, State: discovery.StateServing})
	}
	return f
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

// hang answers only when the request is cancelled, like a frozen process.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func newTransport(t *testing.T, r Resolver, cfg Config) *Transport {
	t.Helper()
	tr, err := New(r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// roundTrip sends req through rt, fails t if it gets no response, and
// closes the response's body.
func roundTrip(t *testing.T, rt http.RoundTripper, req *http.Request) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestNoInstancesFailsFast(t *testing.T) {
	tr := newTransport(t, resolverFunc(func(string) []discovery.Instance { return nil }), Config{})
	start := time.Now()
	_, err := tr.Client().Get("http://ghost/x")
	if !errors.Is(err, ErrNoInstances) {
		t.Fatalf("err = %v, want ErrNoInstances", err)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Service != "ghost" {
		t.Fatalf("err = %#v, want *Error naming service ghost", err)
	}
	// Far below the 10 s default timeout, with room for a loaded machine.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v to fail with no instances", d)
	}
}

func TestFailoverAwayFromDeadInstance(t *testing.T) {
	f := newFleet(t, nil, ok, ok)
	var dead atomic.Int64
	tr := newTransport(t, f, Config{Observer: observerFunc(func(_ string, a Attempt) {
		if a.Instance == "svc-0" {
			dead.Add(1)
		}
	})})
	c := tr.Client()
	for i := range 100 {
		resp, body, err := get(t, c, "http://svc/x")
		if err != nil || resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %v %v %q", i, err, resp, body)
		}
	}
	// The failure penalty and then ejection keep calls off the dead instance.
	if n := dead.Load(); n > 3 {
		t.Fatalf("dead instance was tried %d times in 100 calls", n)
	}
}

type observerFunc func(string, Attempt)

func (f observerFunc) ObserveAttempt(s string, a Attempt) { f(s, a) }

func TestNeverTriesTheSameInstanceTwice(t *testing.T) {
	f := newFleet(t, nil, nil, nil)
	var mu sync.Mutex
	var tried []string
	tr := newTransport(t, f, Config{Observer: observerFunc(func(_ string, a Attempt) {
		mu.Lock()
		tried = append(tried, a.Instance)
		mu.Unlock()
	})})
	_, err := tr.Client().Get("http://svc/x")
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if len(ce.Attempts) != 3 || len(tried) != 3 {
		t.Fatalf("attempts = %d (observed %d), want 3", len(ce.Attempts), len(tried))
	}
	seen := map[string]bool{}
	for _, a := range ce.Attempts {
		if seen[a.Instance] {
			t.Fatalf("instance %s tried twice: %v", a.Instance, err)
		}
		seen[a.Instance] = true
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(err, ECONNREFUSED) = false for %v", err)
	}
}

func TestRetryRules(t *testing.T) {
	tests := []struct {
		name      string
		first     http.HandlerFunc // instance svc-0; svc-1 always answers ok
		method    string
		key       string
		wantCode  int
		wantRetry bool
	}{
		{"GET 503 fails over", status(503), "GET", "", 200, true},
		{"GET 502 fails over", status(502), "GET", "", 200, true},
		{"GET 504 fails over", status(504), "GET", "", 200, true},
		{"GET 500 is final", status(500), "GET", "", 500, false},
		{"POST 503 is not retried", status(503), "POST", "", 503, false},
		{"POST with Idempotency-Key is retried", status(503), "POST", "k1", 200, true},
		{"POST refused is retried", nil, "POST", "", 200, true},
		{"404 is an answer", status(404), "GET", "", 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(t, tt.first, ok)
			var attempts []Attempt // of the current call; calls are sequential
			tr := newTransport(t, f, Config{Observer: observerFunc(func(_ string, a Attempt) { attempts = append(attempts, a) })})
			// The first pick is random: call until one starts on svc-0,
			// which happens before svc-0 could be ejected.
			for range 50 {
				attempts = nil
				req, _ := http.NewRequest(tt.method, "http://svc/x", strings.NewReader("body"))
				if tt.key != "" {
					req.Header.Set("Idempotency-Key", tt.key)
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("RoundTrip: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if attempts[0].Instance != "svc-0" {
					continue
				}
				if resp.StatusCode != tt.wantCode {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
				if retried := len(attempts) > 1; retried != tt.wantRetry {
					t.Fatalf("retried = %v, want %v (attempts %+v)", retried, tt.wantRetry, attempts)
				}
				if tt.wantRetry && string(b) != "ok" {
					t.Fatalf("body %q after failover, want ok (body replayed?)", b)
				}
				return
			}
			t.Fatal("svc-0 was never picked first in 50 calls")
		})
	}
}

func TestDeadlineHeaderCarriesRemainingBudget(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      Config
		min, max time.Duration
	}{
		{"the caller's whole remaining deadline", Config{MaxAttempts: 3}, 800 * time.Millisecond, 900 * time.Millisecond},
		{"an explicit per-try timeout when shorter", Config{PerTryTimeout: 300 * time.Millisecond}, 300 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			f := newFleet(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get(TimeoutHeader) })
			tr := newTransport(t, f, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
			roundTrip(t, tr, req)
			d, err := ParseTimeout(<-got)
			if err != nil {
				t.Fatal(err)
			}
			if d < tt.min || d > tt.max {
				t.Fatalf("callee was given %v, want %v to %v", d, tt.min, tt.max)
			}
			if req.Header.Get(TimeoutHeader) != "" {
				t.Fatal("RoundTrip modified the caller's request headers")
			}
		})
	}
}

func TestBudgetStopsRetries(t *testing.T) {
	f := newFleet(t, status(503), status(503), status(503))
	tr := newTransport(t, f, Config{Budget: resilience.BudgetConfig{Ratio: 0, MinPerSecond: 0.1, Window: 10 * time.Second}})
	c := tr.Client()
	for range 10 {
		resp, _, err := get(t, c, "http://svc/x")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want the instance's 503 passed through", resp.StatusCode)
		}
	}
	total := f.hits[0].Load() + f.hits[1].Load() + f.hits[2].Load()
	// 10 requests + 1 retry allowed by the floor (0.1/s × 10 s).
	if total != 11 {
		t.Fatalf("instances saw %d attempts for 10 requests, want 11", total)
	}
}

func TestBudgetExhaustedError(t *testing.T) {
	f := newFleet(t, nil, nil)
	tr := newTransport(t, f, Config{Budget: resilience.BudgetConfig{Ratio: 0, MinPerSecond: 0, Window: time.Second}})
	_, err := tr.Client().Get("http://svc/x")
	if !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("err = %v, want ErrBudgetExhausted", err)
	}
}

func TestCallerCancellationIsFinal(t *testing.T) {
	f := newFleet(t, hang, hang, hang)
	var attempts atomic.Int64
	tr := newTransport(t, f, Config{Observer: observerFunc(func(string, Attempt) { attempts.Add(1) })})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if attempts.Load() != 1 {
		t.Fatalf("%d attempts after the caller cancelled, want 1", attempts.Load())
	}
}

func TestResponseBodyOutlivesAttemptTimer(t *testing.T) {
	// Headers come at once; the body takes longer than the per-try timeout.
	f := newFleet(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, "late body")
	})
	tr := newTransport(t, f, Config{PerTryTimeout: 50 * time.Millisecond})
	resp, body, err := get(t, tr.Client(), "http://svc/x")
	if err != nil || resp.StatusCode != 200 || body != "late body" {
		t.Fatalf("got %v %q %v", resp, body, err)
	}
}

// unacceptingAddr returns an address whose listener never accepts and whose
// accept queue is full, so that connecting to it hangs: a host that is up
// but cannot take a connection.
func unacceptingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 3 { // fill the queue; the last dials already hang
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

func TestPOSTFailsOverWhenConnectionNeverMade(t *testing.T) {
	f := newFleet(t, ok)
	stuck := discovery.Instance{ID: "svc-stuck", Service: "svc", Addr: unacceptingAddr(t), State: discovery.StateServing}
	instances := []discovery.Instance{stuck, f.instances[0]}
	var attempts []Attempt
	tr := newTransport(t, resolverFunc(func(string) []discovery.Instance { return instances }),
		Config{PerTryTimeout: 200 * time.Millisecond, Observer: observerFunc(func(_ string, a Attempt) { attempts = append(attempts, a) })})
	for range 20 { // until the stuck instance is picked first
		attempts = nil
		req, _ := http.NewRequest("POST", "http://svc/x", strings.NewReader("payload"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("POST failed although it never reached the stuck instance: %v", err)
		}
		resp.Body.Close()
		if attempts[0].Instance == "svc-stuck" {
			if resp.StatusCode != 200 || len(attempts) != 2 {
				t.Fatalf("status %d after %d attempts, want 200 after 2", resp.StatusCode, len(attempts))
			}
			return
		}
	}
	t.Fatal("the stuck instance was never picked first")
}
