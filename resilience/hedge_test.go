package resilience_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

func TestHedgerDelay(t *testing.T) {
	tests := []struct {
		name     string
		samples  func(i int) time.Duration // latency of sample i of 1000
		n        int
		min, max time.Duration
	}{
		{name: "too few samples", samples: func(int) time.Duration { return 20 * time.Millisecond }, n: 49},
		{name: "fast service: the floor", samples: func(int) time.Duration { return time.Millisecond }, n: 1000, min: 5 * time.Millisecond, max: 5 * time.Millisecond},
		// p95 of 10..19 ms spread evenly is 19.5 ms; buckets are 19% wide.
		{name: "p95 above the floor", samples: func(i int) time.Duration { return 10*time.Millisecond + time.Duration(i%10)*time.Millisecond }, n: 1000, min: 19 * time.Millisecond, max: 24 * time.Millisecond},
		// 2% stragglers do not move the p95.
		{name: "stragglers ignored", samples: func(i int) time.Duration {
			if i%50 == 0 {
				return time.Second
			}
			return 8 * time.Millisecond
		}, n: 1000, min: 8 * time.Millisecond, max: 10 * time.Millisecond},
		// Everything slow: the delay follows, so hedges stop firing.
		{name: "all slow", samples: func(int) time.Duration { return 400 * time.Millisecond }, n: 1000, min: 400 * time.Millisecond, max: 480 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := resilience.NewHedger(resilience.HedgeConfig{})
				for i := range tt.n {
					h.Observe(time.Now(), tt.samples(i))
					time.Sleep(time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond) // past the recompute interval
				if d := h.Delay(time.Now()); d < tt.min || d > tt.max {
					t.Errorf("Delay = %v, want in [%v, %v]", d, tt.min, tt.max)
				}
			})
		})
	}
}

func TestHedgerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := resilience.NewHedger(resilience.HedgeConfig{})
		for range 500 {
			h.Observe(time.Now(), 50*time.Millisecond)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if d := h.Delay(time.Now()); d < 50*time.Millisecond {
			t.Fatalf("Delay = %v, want ≥ 50ms", d)
		}
		// The service got fast; after a window the old latencies are gone.
		for range 200 {
			h.Observe(time.Now(), 2*time.Millisecond)
			time.Sleep(50 * time.Millisecond)
		}
		if d := h.Delay(time.Now()); d != 5*time.Millisecond {
			t.Errorf("Delay after a window of fast answers = %v, want the 5ms floor", d)
		}
	})
}

func TestHedgerBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := resilience.NewHedger(resilience.HedgeConfig{})
		hedges := 0
		// 1000 calls/s for 20 s, each wanting a hedge: 5% + 1/s get one.
		for range 20000 {
			h.Call()
			if h.TryHedge() {
				hedges++
			}
			time.Sleep(time.Millisecond)
		}
		if hedges < 900 || hedges > 1300 {
			t.Errorf("%d hedges for 20000 calls, want about 5%% + 1/s (1020)", hedges)
		}
		if got, _ := h.Stats(); got != uint64(hedges) {
			t.Errorf("Stats hedges = %d, want %d", got, hedges)
		}
	})
}

func TestHedgerDisabled(t *testing.T) {
	h := resilience.NewHedger(resilience.HedgeConfig{Disabled: true})
	for range 100 {
		h.Observe(time.Now(), 20*time.Millisecond)
	}
	if d := h.Delay(time.Now()); d != 0 {
		t.Errorf("Delay = %v, want 0", d)
	}
}
