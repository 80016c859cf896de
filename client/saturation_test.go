package client

import (
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

// TestNoHedgeWhileTheProcessLags: while this process's own scheduling lag
// is a large part of the hedge delay, late attempts are not hedged (the
// lateness is ours, a hedge would only add load); once it is small again,
// stragglers are hedged as before.
func TestNoHedgeWhileTheProcessLags(t *testing.T) {
	var canceled stragglerCounts
	// One call in 25 straggles: few enough that the hedge delay stays at
	// its 20ms floor (the 95th percentile is a fast call).
	f := newFleet(t, straggler(25, 300*time.Millisecond, &canceled), straggler(25, 300*time.Millisecond, &canceled),
		straggler(25, 300*time.Millisecond, &canceled))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{MinSamples: 10, MinDelay: 20 * time.Millisecond}})
	var lag atomic.Int64
	tr.lag = func(time.Time) time.Duration { return time.Duration(lag.Load()) }
	c := tr.Client()
	calls := func(n int) {
		for range n {
			if _, _, err := get(t, c, "http://svc/x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	lag.Store(int64(time.Second)) // far beyond the delay: the process is the slow part
	calls(150)                    // 6 stragglers (2 per instance), none hedged
	if h := tr.Dependencies()[0].Hedges; h != 0 {
		t.Errorf("%d hedges sent while the process lagged", h)
	}

	lag.Store(int64(100 * time.Microsecond))
	calls(150)
	if h := tr.Dependencies()[0].Hedges; h < 4 {
		t.Errorf("%d hedges once the lag was gone, want the stragglers (6) hedged", h)
	}
}

// TestLagGauge: the gauge reads the scheduler's histogram and its 90th
// percentile since the last reading.
func TestLagGauge(t *testing.T) {
	h := &metrics.Float64Histogram{
		Counts:  []uint64{0, 50, 40, 10},
		Buckets: []float64{0, 1e-6, 1e-3, 1e-2, 1},
	}
	prev := []uint64{0, 0, 0, 0}
	if got := percentile90(h, prev); got != 10*time.Millisecond {
		t.Errorf("p90 of 50 in [1µs, 1ms), 40 in [1ms, 10ms), 10 in [10ms, 1s): %v, want 10ms", got)
	}
	if got := percentile90(h, []uint64{0, 50, 35, 10}); got != 0 {
		t.Errorf("5 events: %v, want 0 (too few to tell)", got)
	}
	var g lagGauge
	now := time.Now()
	g.Lag(now)
	if got := g.Lag(now.Add(time.Millisecond)); got != time.Duration(g.lag.Load()) {
		t.Errorf("a reading within the window is the last estimate")
	}
	g.Lag(now.Add(2 * lagWindow)) // reads again: must not panic, whatever the value
}
