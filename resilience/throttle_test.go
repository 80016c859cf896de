package resilience_test

import (
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

// offer makes n calls through th at one per gap; each allowed call's
// request is accepted if ok. It returns how many were allowed.
func offer(th *resilience.Throttle, n int, gap time.Duration, ok bool) int {
	allowed := 0
	for range n {
		if th.Allow() {
			allowed++
			th.Record(ok)
		}
		time.Sleep(gap)
	}
	return allowed
}

func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := resilience.NewThrottle(resilience.ThrottleConfig{})
		// Healthy: nothing is rejected.
		if got := offer(th, 1000, time.Millisecond, true); got != 1000 {
			t.Fatalf("healthy dependency: %d of 1000 allowed", got)
		}
		// Dead: after a window, about 10% (the 0.9 cap) gets through.
		offer(th, 10000, time.Millisecond, false)
		got := offer(th, 10000, time.Millisecond, false)
		if got < 700 || got > 1400 {
			t.Errorf("dead dependency: %d of 10000 allowed, want about 1000", got)
		}
		if r := th.Rate(); r < 0.85 || r > 0.9 {
			t.Errorf("Rate = %.3f, want about 0.9", r)
		}
		if th.Rejected() == 0 {
			t.Error("Rejected = 0")
		}
		// Recovered: within seconds almost everything goes through.
		offer(th, 4000, time.Millisecond, true)
		if got := offer(th, 1000, time.Millisecond, true); got < 990 {
			t.Errorf("recovered dependency: %d of 1000 allowed", got)
		}
	})
}

func TestThrottleK(t *testing.T) {
	// Half the requests accepted with K = 2: 2·accepts = requests, so no
	// rejection; a third accepted: about 1/3 rejected at steady state.
	tests := []struct {
		name     string
		every    int // one request in every is accepted
		min, max float64
	}{
		{"half accepted", 2, 0.0, 0.02},
		{"third accepted", 3, 0.15, 0.45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := resilience.NewThrottle(resilience.ThrottleConfig{Window: 10 * time.Second})
				i := 0
				rejected, calls := 0, 0
				for range 40000 {
					calls++
					if !th.Allow() {
						rejected++
					} else {
						th.Record(i%tt.every == 0)
						i++
					}
					time.Sleep(time.Millisecond)
				}
				if r := float64(rejected) / float64(calls); r < tt.min || r > tt.max {
					t.Errorf("rejected %.3f of calls, want in [%v, %v]", r, tt.min, tt.max)
				}
			})
		})
	}
}

func TestThrottleDisabled(t *testing.T) {
	th := resilience.NewThrottle(resilience.ThrottleConfig{Disabled: true})
	for range 100 {
		if !th.Allow() {
			t.Fatal("disabled throttle rejected a call")
		}
		th.Record(false)
	}
	if th.Rate() != 0 {
		t.Errorf("Rate = %v", th.Rate())
	}
}

func TestThrottleConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  resilience.ThrottleConfig
		want string
	}{
		{resilience.ThrottleConfig{}, ""},
		{resilience.ThrottleConfig{K: 0.5}, "throttle.k 0.5"},
		{resilience.ThrottleConfig{K: math.Inf(1)}, "throttle.k +Inf"},
		{resilience.ThrottleConfig{Window: time.Millisecond}, "throttle.window 1ms"},
		{resilience.ThrottleConfig{MaxRejection: 1.5}, "throttle.max_rejection 1.5"},
		{resilience.ThrottleConfig{MinRequests: -1}, "throttle.min_requests -1"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !contains(err.Error(), tt.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
