package balance

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestCheaperMatchesCost checks load.cheaper, which avoids the clock and
// most exp calls, against the cost it stands for, computed directly.
func TestCheaperMatchesCost(t *testing.T) {
	tau := float64(10 * time.Second)
	cost := func(l load, now int64) float64 {
		e := l.e * math.Exp(-float64(now-l.stamp)/tau)
		switch l.class() {
		case classIdleNew:
			return 0
		case classBusyNew:
			return math.MaxFloat64 / 2 * (1 - 1/float64(l.n+1)) // above any measured cost, rising with n
		}
		return e * float64(l.n+1)
	}
	now := int64(time.Hour)
	r := rand.New(rand.NewPCG(1, 2))
	randLoad := func() load {
		l := load{n: r.Int64N(4)}
		if r.IntN(5) > 0 {
			l.e = float64(r.Int64N(int64(100 * time.Millisecond)))
		}
		switch r.IntN(3) {
		case 0: // recent, close to now
			l.stamp = now - r.Int64N(int64(time.Second))
		case 1: // anywhere in the last hour
			l.stamp = now - r.Int64N(int64(time.Hour))
		default: // exactly now
			l.stamp = now
		}
		return l
	}
	fixed := []load{
		{}, {n: 1}, {n: 2},
		{e: 1e6, stamp: now}, {e: 1e6, stamp: now - int64(time.Hour)}, {e: 1e6, stamp: 0, n: 3},
		{e: 2e6, stamp: now - int64(10*time.Second)}, {e: 1e6 * math.E, stamp: now},
	}
	check := func(x, y load) {
		cx, cy := cost(x, now), cost(y, now)
		want := cx < cy
		// Exact near-ties may go either way with rounding.
		if math.Abs(cx-cy) <= 1e-9*math.Max(cx, cy) {
			return
		}
		if got := x.cheaper(y, tau); got != want {
			t.Errorf("%+v cheaper than %+v = %v, want %v (costs %g, %g)", x, y, got, want, cx, cy)
		}
	}
	for _, x := range fixed {
		for _, y := range fixed {
			check(x, y)
		}
	}
	for range 100000 {
		check(randLoad(), randLoad())
	}
}
