package resilience

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// LimiterConfig sets a server's adaptive concurrency limit (admission
// control): how many requests it works on at once. The limit moves between
// MinLimit and MaxLimit as latency moves: it falls when requests take longer
// than they used to (work is queueing inside the process) and rises while
// they do not. A zero field means its default (see DefaultLimiterConfig),
// chosen to fit the fields that are set; a zero MaxWait means no wait.
type LimiterConfig struct {
	// Disabled turns admission control off: every request is admitted.
	Disabled bool `json:"disabled" yaml:"disabled"`
	// MinLimit is the floor: this many requests are always admitted, however
	// slow they become, so an overloaded instance still makes progress.
	MinLimit int `json:"min_limit" yaml:"min_limit"`
	// MaxLimit is the ceiling the limit never grows past.
	MaxLimit int `json:"max_limit" yaml:"max_limit"`
	// InitialLimit is the limit before any latency has been measured.
	InitialLimit int `json:"initial_limit" yaml:"initial_limit"`
	// MaxWait is how long a request over the limit may wait for a slot
	// before it is rejected; 0 rejects at once. At most MaxLimiterWait.
	MaxWait time.Duration `json:"max_wait" yaml:"max_wait"`
}

// MaxLimiterWait bounds LimiterConfig.MaxWait: a request over the limit is
// better off on another instance than in a queue here, so it is told within
// milliseconds.
const MaxLimiterWait = 100 * time.Millisecond

// DefaultLimiterConfig returns the limits for a small Go HTTP service sharing
// one machine with others:
//
//   - MinLimit 4: about one request per core of a laptop, so even an instance
//     the limiter has cut back hard keeps its CPUs busy and drains its backlog.
//   - MaxLimit 1000: goroutines are cheap, so the ceiling is only a backstop
//     against runaway growth (file descriptors, memory) on an I/O-bound
//     service whose latency never moves; the latency signal does the work.
//   - InitialLimit 20: failsafe-go's default; a cold Go service serves 20
//     requests at once without trouble, requests over it are refused unprocessed
//     (callers send them elsewhere), and the limit grows within seconds while
//     latency holds.
//   - MaxWait 0: a request over the limit is rejected at once with 503, so
//     the caller fails over to another instance instead of queueing here.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{MinLimit: 4, MaxLimit: 1000, InitialLimit: 20}
}

// withDefaults fills zero limits with defaults that agree with the limits
// that are set: MaxLimit 10 alone gives min 4, initial 10.
func (c LimiterConfig) withDefaults() LimiterConfig {
	d := DefaultLimiterConfig()
	if c.MaxLimit == 0 {
		c.MaxLimit = max(d.MaxLimit, c.MinLimit, c.InitialLimit)
	}
	if c.MinLimit == 0 {
		c.MinLimit = min(d.MinLimit, c.MaxLimit)
		if c.InitialLimit > 0 {
			c.MinLimit = min(c.MinLimit, c.InitialLimit)
		}
	}
	if c.InitialLimit == 0 {
		c.InitialLimit = min(max(d.InitialLimit, c.MinLimit), c.MaxLimit)
	}
	return c
}

// Validate reports the first field that cannot work, naming it and its value.
func (c LimiterConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"min_limit", c.MinLimit}, {"max_limit", c.MaxLimit}, {"initial_limit", c.InitialLimit}} {
		if f.v < 0 {
			return fmt.Errorf("resilience: limiter.%s %d must not be negative (0 means the default)", f.name, f.v)
		}
	}
	switch {
	case c.MaxWait < 0:
		return fmt.Errorf("resilience: limiter.max_wait %v must not be negative", c.MaxWait)
	case c.MaxWait > MaxLimiterWait:
		return fmt.Errorf("resilience: limiter.max_wait %v is over %v: requests over the limit must be rejected fast", c.MaxWait, MaxLimiterWait)
	}
	d := c.withDefaults()
	switch {
	case d.MaxLimit < d.MinLimit:
		return fmt.Errorf("resilience: limiter.max_limit %d is less than min_limit %d", d.MaxLimit, d.MinLimit)
	case d.InitialLimit < d.MinLimit || d.InitialLimit > d.MaxLimit:
		return fmt.Errorf("resilience: limiter.initial_limit %d is outside [min_limit %d, max_limit %d]", d.InitialLimit, d.MinLimit, d.MaxLimit)
	}
	return nil
}

// limiterStabilization is how long the limiter remembers the peak number of
// requests in flight when it caps the limit at a multiple of it (5×, the
// failsafe-go default). Request traffic comes in bursts; without the memory
// a quiet second pulls the cap down and the next burst is rejected.
const limiterStabilization = time.Minute

// The limit is updated once per recent window: at least limiterWindow and
// limiterSamples requests, at most limiterMaxWindow. failsafe-go's defaults
// (1 s, 50) move the limit by about one step a second, so an overloaded
// instance took half a minute to come down from its initial limit while its
// queue grew; a tenth of a second with 20 samples brings it down in a few
// seconds, and the p90 over 20 samples is still steady enough at the rates
// where overload happens.
// The baseline latency the recent one is compared with averages over
// limiterBaselineAge windows (failsafe-go's default, 10, was meant for 1 s
// windows): about 10 s, so that a queue building up over seconds is seen
// as one, not taken for the new normal.
const (
	limiterWindow      = 100 * time.Millisecond
	limiterMaxWindow   = 5 * time.Second
	limiterSamples     = 20
	limiterBaselineAge = 100
)

// Limiter is an adaptive concurrency limit for the requests a server admits.
// It wraps failsafe-go's adaptive limiter, which compares recent latency
// (p90 over a window of at least 100 ms and 20 requests) with a long-term
// baseline and lowers the limit when latency climbs with concurrency (work
// queueing in the process), raising it while latency holds.
//
// A Limiter is safe for concurrent use. Acquire never blocks longer than
// MaxWait; it starts no goroutines.
type Limiter struct {
	lim     adaptivelimiter.AdaptiveLimiter[any] // nil when disabled
	maxWait time.Duration

	inFlight atomic.Int64
	admitted atomic.Uint64
	rejected atomic.Uint64
}

// NewLimiter returns a limiter. A zero config means DefaultLimiterConfig. It
// panics on a config that fails Validate: check it first where it comes from
// user input.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	l := &Limiter{maxWait: cfg.MaxWait}
	if cfg.Disabled {
		return l
	}
	cfg = cfg.withDefaults()
	l.lim = adaptivelimiter.NewBuilder[any]().
		WithLimits(uint(cfg.MinLimit), uint(cfg.MaxLimit), uint(cfg.InitialLimit)).
		WithMaxLimitStabilizationWindow(limiterStabilization).
		WithRecentWindow(limiterWindow, limiterMaxWindow, limiterSamples).
		WithBaselineWindow(limiterBaselineAge).
		Build()
	return l
}

// Acquire admits a request if the limit allows it, waiting at most MaxWait
// for a slot (and not past ctx's end). When ok, the caller must end the
// permit with exactly one call to Record or Drop; when not ok, it should
// reject the request (503 with Retry-After) without doing its work.
func (l *Limiter) Acquire(ctx context.Context) (p Permit, ok bool) {
	if l.lim == nil {
		l.inFlight.Add(1)
		l.admitted.Add(1)
		return Permit{l: l}, true
	}
	var lp adaptivelimiter.Permit
	if l.maxWait == 0 {
		lp, ok = l.lim.TryAcquirePermit() // no timer, no context: the common case
	} else {
		var err error
		lp, err = l.lim.AcquirePermitWithMaxWait(ctx, l.maxWait)
		ok = err == nil
	}
	if !ok {
		l.rejected.Add(1)
		return Permit{}, false
	}
	l.inFlight.Add(1)
	l.admitted.Add(1)
	return Permit{l: l, p: lp}, true
}

// Stats returns the current limit and counts. Limit is 0 when the limiter is
// disabled (there is none).
func (l *Limiter) Stats() LimiterStats {
	s := LimiterStats{
		InFlight: int(l.inFlight.Load()),
		Admitted: l.admitted.Load(),
		Rejected: l.rejected.Load(),
	}
	if l.lim != nil {
		s.Limit = l.lim.Limit()
	}
	return s
}

// Permit is one admitted request. End it with exactly one call to Record or
// Drop, from any goroutine; later calls on the same Permit do nothing. Do not
// copy a Permit before ending it: each copy would release the slot.
type Permit struct {
	l *Limiter
	p adaptivelimiter.Permit // nil when the limiter is disabled
}

// Record ends the request and feeds its latency (since Acquire) to the limit.
// Use it for every request that ran to completion, failed or not.
func (p *Permit) Record() { p.end(false) }

// Drop ends the request without feeding its latency to the limit: for
// requests whose duration says nothing about load, such as those the client
// abandoned part-way.
func (p *Permit) Drop() { p.end(true) }

func (p *Permit) end(drop bool) {
	if p.l == nil {
		return
	}
	p.l.inFlight.Add(-1)
	if p.p != nil {
		if drop {
			p.p.Drop()
		} else {
			p.p.Record()
		}
	}
	*p = Permit{}
}
