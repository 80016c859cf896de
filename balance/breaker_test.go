package balance_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

func TestBreakerFailureRate(t *testing.T) {
	S, F := balance.Success, balance.Failure
	tests := []struct {
		name        string
		pattern     []balance.Outcome // repeated
		n           int               // outcomes recorded
		gap         time.Duration     // between outcomes
		wantEjected bool
	}{
		{name: "half failing trips at min requests", pattern: []balance.Outcome{S, F}, n: 20, gap: 10 * time.Millisecond, wantEjected: true},
		{name: "half failing below min requests", pattern: []balance.Outcome{S, F}, n: 19, gap: 10 * time.Millisecond},
		{name: "a third failing does not trip", pattern: []balance.Outcome{S, S, F}, n: 60, gap: 10 * time.Millisecond},
		// 2 outcomes per second over a 10 s window: never 20 at once.
		{name: "outcomes spread beyond the window", pattern: []balance.Outcome{S, F}, n: 60, gap: 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := balance.New(testConfig())
				c := serving("a", "b", "c")
				h := hostOf(t, b, c, "a")
				for i := range tt.n {
					record(h, tt.gap, tt.pattern[i%len(tt.pattern)])
				}
				s := stats(b)["a"]
				if s.Ejected != tt.wantEjected {
					t.Fatalf("Ejected = %v, want %v (%+v)", s.Ejected, tt.wantEjected, s)
				}
				if tt.wantEjected && s.Breaker != balance.BreakerOpen {
					t.Errorf("Breaker = %q, want open", s.Breaker)
				}
			})
		})
	}
}

func TestBreakerHalfOpen(t *testing.T) {
	tests := []struct {
		name        string
		probe       balance.Outcome
		wantBreaker string
		wantUntil   time.Duration // next ejection's length, if ejected again
	}{
		{name: "probe succeeds", probe: balance.Success, wantBreaker: balance.BreakerClosed},
		{name: "probe fails", probe: balance.Failure, wantBreaker: balance.BreakerOpen, wantUntil: 2 * time.Second},
		{name: "probe canceled", probe: balance.Canceled, wantBreaker: balance.BreakerHalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := balance.New(testConfig()) // BaseTime 1 s
				c := serving("a", "b", "c")
				// b and c are slow, so that a once back is the cheaper pick.
				record(hostOf(t, b, c, "b"), 2*time.Second, balance.Success)
				record(hostOf(t, b, c, "c"), 2*time.Second, balance.Success)
				eject(t, b, c, "a")
				time.Sleep(time.Second)
				if got := stats(b)["a"].Breaker; got != balance.BreakerHalfOpen {
					t.Fatalf("after the ejection Breaker = %q, want half_open", got)
				}
				probe := hostOf(t, b, c, "a")
				start := probe.Start()
				// While the probe is out, a is picked only as a last resort.
				for range 100 {
					if h, _ := b.Pick(c, nil); h.Instance().ID == "a" {
						t.Fatal("picked a while its probe is in flight")
					}
				}
				if h, _ := b.Pick(c, []string{"b", "c"}); h.Instance().ID != "a" {
					t.Fatal("a not picked as the last resort")
				}
				time.Sleep(10 * time.Millisecond)
				probe.Finish(start, tt.probe)
				s := stats(b)["a"]
				if s.Breaker != tt.wantBreaker {
					t.Fatalf("after a %v probe Breaker = %q, want %q", tt.probe, s.Breaker, tt.wantBreaker)
				}
				if tt.wantUntil > 0 {
					if got := time.Until(s.EjectedUntil); got != tt.wantUntil {
						t.Errorf("ejected again for %v, want %v", got, tt.wantUntil)
					}
					return
				}
				picked := false
				for range 200 {
					if h, _ := b.Pick(c, nil); h.Instance().ID == "a" {
						picked = true
						break
					}
				}
				if !picked {
					t.Error("a never picked after its probe ended")
				}
			})
		})
	}
}

func TestOutrunDoublesTheLatencyCharged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig()) // FailurePenalty 500 ms
		c := serving("a", "b", "c")
		h := hostOf(t, b, c, "a")
		// Outrun after 10 ms, three times in a row: charged 10, 20, 40 ms.
		for i, want := range []time.Duration{10, 20, 40} {
			record(h, 10*time.Millisecond, balance.Outrun)
			if got := stats(b)["a"].EWMA; got != want*time.Millisecond {
				t.Fatalf("outrun %d: EWMA %v, want %v", i+1, got, want*time.Millisecond)
			}
		}
		for range 10 {
			record(h, 10*time.Millisecond, balance.Outrun)
		}
		s := stats(b)["a"]
		if s.EWMA != 500*time.Millisecond || s.Ejected || s.ConsecutiveFailures != 0 {
			t.Fatalf("after 13 outruns: %+v; want EWMA capped at the failure penalty, not ejected, no failures", s)
		}
		// A success ends the streak: the next outrun is charged as measured.
		record(h, time.Millisecond, balance.Success)
		time.Sleep(time.Minute) // let the estimate decay
		record(h, 10*time.Millisecond, balance.Outrun)
		if got := stats(b)["a"].EWMA; got != 10*time.Millisecond {
			t.Errorf("outrun after a success: EWMA %v, want 10ms", got)
		}
	})
}

func TestRefusedDoublesTheEstimate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig()) // FailurePenalty 500 ms
		c := serving("a", "b", "c")
		h := hostOf(t, b, c, "a")
		record(h, 20*time.Millisecond, balance.Success)
		// Refused at once, three times in a row: charged 2×, 4×, 8× the
		// estimate of 20 ms.
		for i, want := range []time.Duration{40, 160, 1280} {
			record(h, 0, balance.Refused)
			if got := stats(b)["a"].EWMA; got != min(want*time.Millisecond, 500*time.Millisecond) {
				t.Fatalf("refusal %d: EWMA %v, want %v", i+1, got, min(want*time.Millisecond, 500*time.Millisecond))
			}
		}
		for range 10 {
			record(h, 0, balance.Refused)
		}
		s := stats(b)["a"]
		if s.EWMA != 500*time.Millisecond || s.Ejected || s.ConsecutiveFailures != 0 {
			t.Fatalf("after 13 refusals: %+v; want EWMA capped at the failure penalty, not ejected, no failures", s)
		}
		// A success ends the streak: the next refusal doubles the estimate
		// once.
		time.Sleep(time.Minute) // let the estimate decay
		record(h, 20*time.Millisecond, balance.Success)
		time.Sleep(time.Minute)
		before := stats(b)["a"].EWMA
		record(h, 0, balance.Refused)
		if got := stats(b)["a"].EWMA; got != 2*before {
			t.Errorf("refusal after a success: EWMA %v, want 2 × %v", got, before)
		}
	})
}

func TestBreakerUnpickedProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		c := serving("a", "b", "c")
		eject(t, b, c, "a")
		time.Sleep(time.Second)
		// a is picked as the probe, but the caller's budget refuses the
		// request: it gives a back, and a stays open to the next probe.
		hostOf(t, b, c, "a").Unpick()
		if got := stats(b)["a"].Breaker; got != balance.BreakerHalfOpen {
			t.Fatalf("after Unpick Breaker = %q, want half_open", got)
		}
		probe := hostOf(t, b, c, "a")
		for range 50 {
			if h, _ := b.Pick(c, nil); h.Instance().ID == "a" {
				t.Fatal("a picked again while its second probe is out")
			}
		}
		record(probe, time.Millisecond, balance.Success)
		if got := stats(b)["a"].Breaker; got != balance.BreakerClosed {
			t.Errorf("after the probe Breaker = %q, want closed", got)
		}
	})
}

func TestBreakerProbeSuccessResetsFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := balance.New(testConfig())
		c := serving("a", "b", "c")
		eject(t, b, c, "a")
		// Two failures while ejected, picked as a last resort.
		last := func() *balance.Host {
			h, err := b.Pick(c, []string{"b", "c"})
			if err != nil || h.Instance().ID != "a" {
				t.Fatalf("last resort: %v, %v", h, err)
			}
			return h
		}
		record(last(), time.Millisecond, balance.Failure)
		record(last(), time.Millisecond, balance.Failure)
		time.Sleep(time.Second)
		record(hostOf(t, b, c, "a"), time.Millisecond, balance.Success)
		s := stats(b)["a"]
		if s.Breaker != balance.BreakerClosed || s.ConsecutiveFailures != 0 {
			t.Fatalf("after a successful probe: %+v, want closed with no failures counted", s)
		}
		// One failure is not three.
		record(hostOf(t, b, c, "a"), time.Millisecond, balance.Failure)
		if stats(b)["a"].Ejected {
			t.Error("ejected by one failure after a successful probe")
		}
	})
}
