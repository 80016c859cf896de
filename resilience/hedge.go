package resilience

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// HedgeConfig sets hedging: when an idempotent call has not answered after
// a delay derived from the dependency's recent latency, a second attempt
// goes to another instance and the first answer wins. Hedges are budgeted
// to MaxExtra of calls, and stop by themselves when every instance is slow:
// the delay rises with the latency it is derived from. The zero value
// means DefaultHedgeConfig.
type HedgeConfig struct {
	// Disabled turns hedging off.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// Percentile of recent latencies after which a call is hedged, in
	// (0, 1).
	Percentile float64 `json:"percentile" yaml:"percentile"`
	// MinDelay is the floor of the hedge delay: below it the cost of a
	// hedge outweighs what it can save.
	MinDelay time.Duration `json:"min_delay" yaml:"min_delay"`
	// MaxExtra bounds hedges to this share of calls (plus one per second, so
	// a quiet dependency may hedge too).
	MaxExtra float64 `json:"max_extra" yaml:"max_extra"`
	// MinSamples is the fewest latencies in the window before hedging.
	MinSamples int `json:"min_samples" yaml:"min_samples"`
	// Window is how far back latencies count.
	Window time.Duration `json:"window" yaml:"window"`
}

// DefaultHedgeConfig: hedge at the p95 of the last 10 s, never before 5 ms,
// for at most 5% extra requests, once 50 latencies are known.
func DefaultHedgeConfig() HedgeConfig {
	return HedgeConfig{Percentile: 0.95, MinDelay: 5 * time.Millisecond, MaxExtra: 0.05, MinSamples: 50, Window: 10 * time.Second}
}

func (c HedgeConfig) withDefaults() HedgeConfig {
	d := DefaultHedgeConfig()
	c.Percentile = cmp.Or(c.Percentile, d.Percentile)
	c.MinDelay = cmp.Or(c.MinDelay, d.MinDelay)
	c.MaxExtra = cmp.Or(c.MaxExtra, d.MaxExtra)
	c.MinSamples = cmp.Or(c.MinSamples, d.MinSamples)
	c.Window = cmp.Or(c.Window, d.Window)
	return c
}

// Validate reports the first setting that cannot work. Zero fields are
// valid: they take their defaults.
func (c HedgeConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case math.IsNaN(c.Percentile) || c.Percentile <= 0 || c.Percentile >= 1:
		return fmt.Errorf("resilience: hedge.percentile %v out of range (0, 1)", c.Percentile)
	case c.MinDelay < 0:
		return fmt.Errorf("resilience: hedge.min_delay %v must not be negative", c.MinDelay)
	case math.IsNaN(c.MaxExtra) || c.MaxExtra < 0 || c.MaxExtra > 1:
		return fmt.Errorf("resilience: hedge.max_extra %v out of range [0, 1]", c.MaxExtra)
	case c.MinSamples < 0:
		return fmt.Errorf("resilience: hedge.min_samples %d must not be negative", c.MinSamples)
	case c.Window < 200*time.Millisecond:
		return fmt.Errorf("resilience: hedge.window %v is below 200ms", c.Window)
	}
	return nil
}

// Latency histogram: buckets a quarter of an octave wide (19% apart) from
// 2^minOctave ns (1 µs) to 2^(minOctave+octaves) ns (about 69 s).
const (
	minOctave  = 10
	octaves    = 26
	subBuckets = 4
	numBuckets = octaves * subBuckets
)

// bucketOf is the histogram bucket of a latency.
func bucketOf(d time.Duration) int {
	v := uint64(max(d, 1))
	o := bits.Len64(v) - 1 // v in [2^o, 2^(o+1))
	if o < minOctave {
		return 0
	}
	if o >= minOctave+octaves {
		return numBuckets - 1
	}
	sub := int(v>>(o-2)) & (subBuckets - 1) // the two bits after the leading one
	return (o-minOctave)*subBuckets + sub
}

// bucketTop is the upper bound of bucket i: a percentile read off the
// histogram errs on the late side, as a hedge delay should.
func bucketTop(i int) time.Duration {
	o, sub := i/subBuckets+minOctave, i%subBuckets
	return time.Duration(uint64(subBuckets+sub+1) << (o - 2))
}

// generation is the histogram of half a window.
type generation struct {
	epoch  atomic.Int64 // which half-window it holds
	counts [numBuckets]atomic.Uint32
	n      atomic.Int64
}

// Hedger decides when to hedge the calls to one dependency. Safe for
// concurrent use; Observe and Delay take no lock.
type Hedger struct {
	cfg    HedgeConfig
	half   int64 // half a window, ns
	gens   [2]generation
	budget *Budget

	// The delay is recomputed at most every recompute.
	delay  atomic.Int64 // ns; 0: not enough samples
	stamp  atomic.Int64 // ns since epoch of the last computation
	epoch  time.Time
	hedges atomic.Uint64
	wins   atomic.Uint64
}

const recompute = 100 * time.Millisecond

// NewHedger returns a Hedger for cfg, whose zero fields take their
// defaults. It panics if cfg.Validate fails. A disabled config gives a
// Hedger whose Delay is always 0.
func NewHedger(cfg HedgeConfig) *Hedger {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	disabled := cfg.Disabled
	cfg = cfg.withDefaults()
	cfg.Disabled = disabled
	h := &Hedger{cfg: cfg, half: int64(cfg.Window / 2), epoch: time.Now()}
	h.budget = NewBudget(BudgetConfig{Ratio: cfg.MaxExtra, MinPerSecond: 1, Window: cfg.Window})
	h.stamp.Store(-int64(recompute))
	return h
}

// Observe records the latency of a successful attempt, at now.
func (h *Hedger) Observe(now time.Time, d time.Duration) {
	if h.cfg.Disabled {
		return
	}
	e := int64(now.Sub(h.epoch)) / h.half
	g := &h.gens[e&1]
	if old := g.epoch.Load(); old != e && g.epoch.CompareAndSwap(old, e) {
		// A new half-window: forget what this generation held. Samples
		// added concurrently with the reset may be lost; it is an estimate.
		for i := range g.counts {
			g.counts[i].Store(0)
		}
		g.n.Store(0)
	}
	g.counts[bucketOf(d)].Add(1)
	g.n.Add(1)
}

// Delay is how long a call started at now waits before it is hedged: the
// configured percentile of the latencies of the last window, at least
// MinDelay; 0 if hedging is off or fewer than MinSamples are known.
func (h *Hedger) Delay(now time.Time) time.Duration {
	if h.cfg.Disabled {
		return 0
	}
	t := int64(now.Sub(h.epoch))
	d := h.delay.Load()
	if d == 0 && h.gens[0].n.Load()+h.gens[1].n.Load() >= int64(h.cfg.MinSamples) {
		// Enough samples at last: compute now rather than when the
		// interval is up.
		h.stamp.Store(t - int64(recompute))
	}
	if s := h.stamp.Load(); t-s < int64(recompute) || !h.stamp.CompareAndSwap(s, t) {
		return time.Duration(d)
	}
	nd := h.compute(t / h.half)
	h.delay.Store(int64(nd))
	return nd
}

// compute reads the percentile off the generations of half-windows e and
// e-1.
func (h *Hedger) compute(e int64) time.Duration {
	var counts [numBuckets]int64
	var n int64
	for i := range h.gens {
		g := &h.gens[i]
		if ge := g.epoch.Load(); ge != e && ge != e-1 {
			continue
		}
		for j := range g.counts {
			c := int64(g.counts[j].Load())
			counts[j] += c
			n += c
		}
	}
	if n == 0 || n < int64(h.cfg.MinSamples) {
		return 0
	}
	rank := int64(math.Ceil(h.cfg.Percentile * float64(n)))
	var seen int64
	for j, c := range counts {
		if seen += c; seen >= rank {
			return max(bucketTop(j), h.cfg.MinDelay)
		}
	}
	return max(bucketTop(numBuckets-1), h.cfg.MinDelay)
}

// Call counts a call that may be hedged, for the hedge budget.
func (h *Hedger) Call() { h.budget.Request() }

// TryHedge reports whether the budget allows one more hedge, and counts it
// if so.
func (h *Hedger) TryHedge() bool {
	if !h.budget.TryRetry() {
		return false
	}
	h.hedges.Add(1)
	return true
}

// Won records that a hedge's answer was the one used.
func (h *Hedger) Won() { h.wins.Add(1) }

// Stats returns the hedges sent and the hedges whose answer was used.
func (h *Hedger) Stats() (hedges, wins uint64) { return h.hedges.Load(), h.wins.Load() }
