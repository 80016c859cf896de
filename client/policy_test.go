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

// stragglerCounts is what straggler handlers did: requests picked to
// straggle, and how each of those ended.
type stragglerCounts struct{ picked, canceled, completed atomic.Int64 }

// straggler answers at once except every nth request it receives, which
// takes d unless canceled.
func straggler(n int64, d time.Duration, c *stragglerCounts) http.HandlerFunc {
	var count atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1)%n == 0 {
			c.picked.Add(1)
			select {
			case <-time.After(d):
				c.completed.Add(1)
			case <-r.Context().Done():
				c.canceled.Add(1)
				return
			}
		}
		ok(w, r)
	}
}

// TestHedgingRescuesStragglers: one request in 20 takes 2 s; hedges rescue
// them, and the losers are canceled. The hedge delay floor (200 ms) is far
// above what a normal call takes even on a loaded machine, so hedges are
// spent on stragglers, not on calls the machine made slow (they would
// exhaust the hedge budget and leave stragglers unhedged).
func TestHedgingRescuesStragglers(t *testing.T) {
	var sc stragglerCounts
	const d = 2 * time.Second
	f := newFleet(t, straggler(20, d, &sc), straggler(20, d, &sc), straggler(20, d, &sc))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{MinSamples: 10, MinDelay: 200 * time.Millisecond}})
	c := tr.Client()
	slow := 0
	for range 300 {
		start := time.Now()
		if _, _, err := get(t, c, "http://svc/x"); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > d/2 {
			slow++
		}
	}
	// Every picked straggler ends one way or the other within d.
	deadline := time.Now().Add(d + 30*time.Second)
	for sc.canceled.Load()+sc.completed.Load() < sc.picked.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	st := tr.Dependencies()[0]
	t.Logf("%d slow calls; %d stragglers: %d canceled, %d ran their course; hedges %d, wins %d",
		slow, sc.picked.Load(), sc.canceled.Load(), sc.completed.Load(), st.Hedges, st.HedgeWins)
	// Unhedged, about 15 calls would take 2 s. A hedge can straggle too
	// (one in 20), which leaves a rare slow call.
	if slow > 2 {
		t.Errorf("%d calls took over %v: stragglers were not hedged", slow, d/2)
	}
	if st.HedgeWins < 5 || st.Hedges < st.HedgeWins {
		t.Errorf("hedges %d, wins %d", st.Hedges, st.HedgeWins)
	}
	// About 1 in 20 requests straggles; hedges stay near that, far below
	// every call.
	if st.Hedges > 40 {
		t.Errorf("%d hedges for 300 calls with 5%% stragglers", st.Hedges)
	}
	// A straggler that was not canceled made its call slow: every one that
	// lost to its hedge was canceled.
	if n := sc.completed.Load(); n > int64(slow) {
		t.Errorf("%d stragglers ran their course, %d calls were slow: losers were not canceled", n, slow)
	}
}

func TestNoHedgingWhenNotIdempotent(t *testing.T) {
	var sc stragglerCounts
	f := newFleet(t, straggler(5, 50*time.Millisecond, &sc), straggler(5, 50*time.Millisecond, &sc))
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
	// Every straggler answered, after its 50 ms: none was cut short. How
	// many there were depends on how the balancer split the 50 calls (9
	// to 10), so the time is checked against the ones picked.
	picked, completed := sc.picked.Load(), sc.completed.Load()
	if picked == 0 || completed != picked || sc.canceled.Load() != 0 {
		t.Errorf("stragglers: %d picked, %d completed, %d canceled; want all completed", picked, completed, sc.canceled.Load())
	}
	if d := time.Since(start); d < time.Duration(picked)*50*time.Millisecond {
		t.Errorf("50 POSTs took %v with %d stragglers of 50 ms: stragglers were cut short", d, picked)
	}
}

func TestHedgingDisabled(t *testing.T) {
	var sc stragglerCounts
	f := newFleet(t, straggler(10, 50*time.Millisecond, &sc), straggler(10, 50*time.Millisecond, &sc))
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
	// At once: far below the 10 s default timeout a wait would last, with
	// room for a loaded machine.
	if d := time.Since(start); d > time.Second {
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
