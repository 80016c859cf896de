package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
)

// sdkBackends runs n instances of service as SDK services serving h, and
// lists them in the gateway's catalog.
func (e *edge) sdkBackends(t *testing.T, service string, n int, h http.Handler) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("%s-%d", service, i+1)
		svc := runService(t, shoal.Config{Name: service, ID: id}, h)
		e.cat.Upsert(discovery.Instance{ID: id, Service: service, Addr: svc.Addr(), State: discovery.StateServing})
	}
}

// A slow answer is not a failure: behind a route with a 1 s timeout, a
// report that takes 40% or 70% of it is answered by the first instance it
// reaches, which gets exactly one request and the whole remaining budget in
// Shoal-Timeout-Ms. Gateway and backends are SDK services on loopback. (The
// equal share per attempt gave each instance a third of the timeout,
// abandoned both reports, and answered 504 after doing the work twice.)
//
// 70%, not 90%: the rest of the timeout is the slack for everything but
// the report. On a loaded 2-core machine (several test binaries at once)
// the report's own timer fired up to 110 ms late and the answer's
// way back took up to 71 ms, in 210 runs; with 100 ms of slack it failed
// once in those and once in 6 runs of the whole package.
func TestSlowBackendAnswersOnce(t *testing.T) {
	// 90% of the timeout, as issue 12 asks, with 300 ms to spare: a timer
	// on a loaded 2-core machine fires up to 110 ms late, and the answer
	// takes up to 70 ms back (measured), which 90% of 1 s did not allow.
	const timeout = 3 * time.Second
	for _, share := range []float64{0.4, 0.9} {
		t.Run(fmt.Sprintf("%.0f%% of the timeout", 100*share), func(t *testing.T) {
			slow := time.Duration(share * float64(timeout))
			e := startEdge(t, shoal.Config{}, 5*time.Second)
			if err := e.gw.SetConfig(&gateway.Config{Routes: []gateway.Route{
				{Path: "/reports/", Service: "reports", Timeout: timeout},
			}}, ""); err != nil {
				t.Fatal(err)
			}
			var requests atomic.Int64
			budgets := make(chan budget, 3)
			report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				budgets <- budget{r.Header.Get(client.TimeoutHeader), time.Now()}
				select {
				case <-time.After(slow):
					io.WriteString(w, "report")
				case <-r.Context().Done():
				}
			})
			e.sdkBackends(t, "reports", 3, report)
			start := time.Now()
			resp, err := http.Get("http://" + e.addr + "/reports/monthly")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusOK || string(body) != "report" {
				t.Fatalf("status %d %q after %v, want the report", resp.StatusCode, body, took)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("the backends got %d requests, want exactly 1", n)
			}
			got := <-budgets
			b, err := client.ParseTimeout(got.header)
			// The route's timer started after start; the header, rounded
			// down to the millisecond, was written before the backend read it.
			least := timeout - got.at.Sub(start) - time.Millisecond
			if err != nil || b < least || b > timeout {
				t.Errorf("the backend was given %v (%v), want the route's remaining budget, %v to %v", b, err, least, timeout)
			}
		})
	}
}

// budget is the TimeoutHeader a backend was sent, and when it read it.
type budget struct {
	header string
	at     time.Time
}

// per_try_timeout is an explicit policy of a route: an attempt that has no
// answer by then is abandoned and the request tried on another instance.
func TestRoutePerTryTimeout(t *testing.T) {
	e := startEdge(t, shoal.Config{}, 5*time.Second)
	if err := e.gw.SetConfig(&gateway.Config{Routes: []gateway.Route{
		{Path: "/reports/", Service: "reports", Timeout: 2 * time.Second, PerTryTimeout: 200 * time.Millisecond},
	}}, ""); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	report := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			select { // the first request straggles
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "report")
	})
	e.sdkBackends(t, "reports", 2, report)
	start := time.Now()
	resp, err := http.Get("http://" + e.addr + "/reports/monthly")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || requests.Load() != 2 || took > 900*time.Millisecond {
		t.Fatalf("status %d after %d requests and %v, want 200 from the second after ~200ms", resp.StatusCode, requests.Load(), took)
	}
}
