package client

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

// straggler answers at once except every nth request it receives, which
// takes d unless canceled; canceled counts those that were.
func straggler(n int64, d time.Duration, canceled *atomic.Int64) http.HandlerFunc {
	var count atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1)%n == 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				canceled.Add(1)
				return
			}
		}
		ok(w, r)
	}
}

func TestHedgingRescuesStragglers(t *testing.T) {
	var canceled atomic.Int64
	f := newFleet(t, straggler(20, time.Second, &canceled), straggler(20, time.Second, &canceled), straggler(20, time.Second, &canceled))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{MinSamples: 10, MinDelay: 20 * time.Millisecond}})
	c := tr.Client()
	slow := 0
	for range 300 {
		start := time.Now()
		if _, _, err := get(t, c, "http://svc/x"); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 500*time.Millisecond {
			slow++
		}
	}
	st := tr.Dependencies()[0]
	t.Logf("%d slow calls; hedges %d, wins %d, canceled losers %d", slow, st.Hedges, st.HedgeWins, canceled.Load())
	// Unhedged, one request in 20 takes a second: about 15 calls. A hedge
	// can straggle too (one in 20), which leaves a rare slow call.
	if slow > 2 {
		t.Errorf("%d calls took over 500ms: stragglers were not hedged", slow)
	}
	if st.HedgeWins < 5 || st.Hedges < st.HedgeWins {
		t.Errorf("hedges %d, wins %d", st.Hedges, st.HedgeWins)
	}
	// About 1 in 20 requests straggles; hedges stay near that, far below
	// every call.
	if st.Hedges > 40 {
		t.Errorf("%d hedges for 300 calls with 5%% stragglers", st.Hedges)
	}
	// Every straggler that lost to its hedge was canceled.
	deadline := time.Now().Add(5 * time.Second)
	for canceled.Load() < int64(st.HedgeWins) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := canceled.Load(); got < int64(st.HedgeWins) {
		t.Errorf("%d losers canceled, want %d", got, st.HedgeWins)
	}
}

func TestNoHedgingWhenNotIdempotent(t *testing.T) {
	var canceled atomic.Int64
	f := newFleet(t, straggler(5, 50*time.Millisecond, &canceled), straggler(5, 50*time.Millisecond, &canceled))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{MinSamples: 5, MinDelay: 10 * time.Millisecond}})
	c := tr.Client()
	start := time.Now()
	for range 50 {
		resp, err := c.Post("http://svc/x", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if st := tr.Dependencies()[0]; st.Hedges != 0 {
		t.Errorf("%d POSTs hedged, want 0", st.Hedges)
	}
	// 10 stragglers of 50 ms, none hedged.
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("50 POSTs took %v: stragglers were cut short", d)
	}
}

func TestHedgingDisabled(t *testing.T) {
	var canceled atomic.Int64
	f := newFleet(t, straggler(10, 50*time.Millisecond, &canceled), straggler(10, 50*time.Millisecond, &canceled))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{Disabled: true}})
	for range 100 {
		if _, _, err := get(t, tr.Client(), "http://svc/x"); err != nil {
			t.Fatal(err)
		}
	}
	if st := tr.Dependencies()[0]; st.Hedges != 0 {
		t.Errorf("%d hedges with hedging disabled", st.Hedges)
	}
}

func TestThrottleShedsAtTheCaller(t *testing.T) {
	f := newFleet(t, status(503), status(503), status(503))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{Disabled: true}})
	const calls = 1000
	throttled := 0
	for range calls {
		resp, err := tr.Client().Get("http://svc/x")
		switch {
		case errors.Is(err, ErrThrottled):
			throttled++
		case err == nil:
			resp.Body.Close()
		}
	}
	hits := f.hits[0].Load() + f.hits[1].Load() + f.hits[2].Load()
	st := tr.Dependencies()[0]
	t.Logf("%d calls: %d reached the service, %d throttled, rate %.2f, %d retries", calls, hits, throttled, st.ThrottleRate, st.Retries)
	// Without the throttle and the budget: 3 attempts per call, 3000.
	if hits > calls*3/10 {
		t.Errorf("%d requests reached a dead service for %d calls", hits, calls)
	}
	if throttled < calls/2 || st.Throttled != uint64(throttled) {
		t.Errorf("throttled %d (stats %d) of %d calls", throttled, st.Throttled, calls)
	}
}

func TestBulkheadCapsCallsInFlight(t *testing.T) {
	release := make(chan struct{})
	var in atomic.Int64
	f := newFleet(t, func(w http.ResponseWriter, r *http.Request) {
		in.Add(1)
		<-release
		ok(w, r)
	})
	tr := newTransport(t, f, Config{MaxInFlight: 2})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, _, err := get(t, tr.Client(), "http://svc/x"); err != nil {
				t.Error(err)
			}
		})
	}
	for in.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := tr.Client().Get("http://svc/x")
	if !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("third call: err = %v, want ErrBulkheadFull", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("rejection took %v", d)
	}
	st := tr.Dependencies()[0]
	if st.InFlight != 2 || st.MaxInFlight != 2 || st.BulkheadFull != 1 {
		t.Errorf("in flight %d of %d, full %d; want 2 of 2, 1", st.InFlight, st.MaxInFlight, st.BulkheadFull)
	}
	close(release)
	wg.Wait()
	if _, _, err := get(t, tr.Client(), "http://svc/x"); err != nil {
		t.Fatalf("after the calls ended: %v", err)
	}
	if st := tr.Dependencies()[0]; st.InFlight != 0 {
		t.Errorf("in flight %d after every call ended", st.InFlight)
	}
}

func TestDependencyOverrides(t *testing.T) {
	cfg := Config{
		MaxAttempts: 2,
		Hedge:       resilience.HedgeConfig{MinDelay: 7 * time.Millisecond},
		Dependencies: map[string]Config{
			"slow": {Timeout: 30 * time.Second, Hedge: resilience.HedgeConfig{Disabled: true}, MaxInFlight: -1},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	other, slow := cfg.forService("other"), cfg.forService("slow")
	if other.MaxAttempts != 2 || other.Timeout != 10*time.Second || other.Hedge.MinDelay != 7*time.Millisecond || other.MaxInFlight != DefaultMaxInFlight {
		t.Errorf("other = %+v", other)
	}
	if slow.MaxAttempts != 2 || slow.Timeout != 30*time.Second || !slow.Hedge.Disabled || slow.MaxInFlight != -1 {
		t.Errorf("slow = %+v", slow)
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Dependencies: map[string]Config{"a": {MaxAttempts: 99}}}, "dependencies.a: max_attempts 99"},
		{Config{Dependencies: map[string]Config{"a": {Hedge: resilience.HedgeConfig{Percentile: 2}}}}, "dependencies.a: resilience: hedge.percentile 2"},
		{Config{Dependencies: map[string]Config{"a": {Dependencies: map[string]Config{"b": {}}}}}, "dependencies.a: dependencies do not nest"},
		{Config{Throttle: resilience.ThrottleConfig{K: 0.5}}, "client: resilience: throttle.k 0.5"},
	}
	for _, tt := range bad {
		if err := tt.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want it to contain %q", err, tt.want)
		}
	}
}

func TestRejectedPOSTGoesElsewhere(t *testing.T) {
	rejecting := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(RejectedHeader, "overloaded")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	f := newFleet(t, rejecting, rejecting, ok)
	tr := newTransport(t, f, Config{})
	for range 20 {
		resp, err := tr.Client().Post("http://svc/x", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST answered %d: a refused request was not sent elsewhere", resp.StatusCode)
		}
	}
	// A plain 503 may have done the work: a POST is not sent again.
	g := newFleet(t, status(503))
	resp, err := newTransport(t, g, Config{}).Client().Post("http://svc/x", "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != 503 || g.hits[0].Load() != 1 {
		t.Fatalf("plain 503: %v, %v, %d hits", err, resp, g.hits[0].Load())
	}
	resp.Body.Close()
}
