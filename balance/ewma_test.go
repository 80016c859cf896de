package balance_test

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

func TestPeakEWMA(t *testing.T) {
	const ms = float64(time.Millisecond)
	decay := float64(balance.DefaultDecay)
	type step struct {
		d    time.Duration // request length, or idle time
		o    balance.Outcome
		idle bool
	}
	req := func(d time.Duration, o balance.Outcome) step { return step{d: d, o: o} }
	idle := func(d time.Duration) step { return step{d: d, idle: true} }
	repeat := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	tests := []struct {
		name  string
		steps []step
		want  float64 // ns
	}{
		{name: "no sample", want: 0},
		{name: "first sample sets it", steps: []step{req(10*time.Millisecond, balance.Success)}, want: 10 * ms},
		{
			name:  "higher sample replaces it at once",
			steps: []step{req(10*time.Millisecond, balance.Success), req(100*time.Millisecond, balance.Success)},
			want:  100 * ms,
		},
		{
			// 1000 back-to-back 10ms requests span one Decay: the gap to the
			// new level shrinks to 1/e.
			name:  "lower samples pull it down with time constant Decay",
			steps: append([]step{req(100*time.Millisecond, balance.Success)}, repeat(1000, req(10*time.Millisecond, balance.Success))...),
			want:  10*ms + 90*ms*math.Exp(-1),
		},
		{
			name:  "idle decays toward zero",
			steps: []step{req(100*time.Millisecond, balance.Success), idle(balance.DefaultDecay)},
			want:  100 * ms * math.Exp(-1),
		},
		{
			name:  "fast failure charged the penalty",
			steps: []step{req(time.Millisecond, balance.Failure)},
			want:  float64(balance.DefaultFailurePenalty),
		},
		{
			name:  "fast connect failure charged the penalty",
			steps: []step{req(time.Millisecond, balance.ConnectFailure)},
			want:  float64(balance.DefaultFailurePenalty),
		},
		{
			name:  "slow failure keeps its latency",
			steps: []step{req(2*time.Second, balance.Failure)},
			want:  2000 * ms,
		},
		{
			name:  "canceled records nothing",
			steps: []step{req(10*time.Millisecond, balance.Success), req(time.Second, balance.Canceled)},
			want:  10 * ms * math.Exp(-float64(time.Second)/decay),
		},
		{
			name:  "unknown outcome records nothing",
			steps: []step{req(10*time.Millisecond, balance.Success), req(time.Second, balance.Outcome(42))},
			want:  10 * ms * math.Exp(-float64(time.Second)/decay),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := serving("a", "b")
				b := balance.New(balance.DefaultConfig())
				h := hostOf(t, b, c, "a")
				for _, s := range tt.steps {
					if s.idle {
						time.Sleep(s.d)
						continue
					}
					record(h, s.d, s.o)
				}
				got := float64(stats(b)["a"].EWMA)
				if math.Abs(got-tt.want) > 1e-6*tt.want+1 {
					t.Errorf("EWMA = %v, want %v", time.Duration(got), time.Duration(tt.want))
				}
			})
		})
	}
}
