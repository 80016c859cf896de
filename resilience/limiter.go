package resilience

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// LimiterConfig sets a server's adaptive concurrency limit (admission
// control): how many requests it works on at once. The limit moves between
// MinLimit and MaxLimit as latency moves: it falls when requests take longer
// than they used to (work is queueing inside the process) and rises while
// they do not. A request over the limit waits for a slot in a queue while its
// own deadline allows (see Limiter). A zero field means its default (see
// DefaultLimiterConfig), chosen to fit the fields that are set.
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
	// MaxWait bounds how long a request over the limit waits for a slot,
	// whatever its deadline; it is also the wait allowed to a request that
	// brings no deadline. Zero means DefaultMaxWait.
	MaxWait time.Duration `json:"max_wait" yaml:"max_wait"`
	// NoQueue refuses every request over the limit at once, however much
	// time it has left, as Shoal did before it queued.
	NoQueue bool `json:"no_queue,omitempty" yaml:"no_queue,omitempty"`
}

// DefaultMaxWait is the longest a request over the limit waits for a slot by
// default: as long as a client call's default deadline (client.Config's
// 10 s). Requests that carry a deadline wait at most what it allows.
const DefaultMaxWait = 10 * time.Second

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
//   - MaxWait DefaultMaxWait: a request over the limit waits for a slot
//     while its deadline allows, up to 10 s (see Limiter); one that could
//     not be served in time is refused at once with 503.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{MinLimit: 4, MaxLimit: 1000, InitialLimit: 20, MaxWait: DefaultMaxWait}
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
	if c.MaxWait == 0 {
		c.MaxWait = d.MaxWait
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
	if c.MaxWait < 0 {
		return fmt.Errorf("resilience: limiter.max_wait %v must not be negative (0 means the default, %v)", c.MaxWait, DefaultMaxWait)
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
//
// With a queue, the limit never runs ahead of twice the most requests in
// flight over the last limiterStabilization (failsafe-go's default is 5×). Headroom in the
// limit is what lets a burst in at once; with a queue in front the burst
// waits its turn instead, and a limit grown far past what calm traffic
// needs lets the first second of an overload into the process all at once.
const (
	limiterWindow      = 100 * time.Millisecond
	limiterMaxWindow   = 5 * time.Second
	limiterSamples     = 20
	limiterBaselineAge = 100

	limiterMaxFactor        = 2
	limiterMaxFactorNoQueue = 5 // failsafe-go's default: the headroom is what lets a burst in
)

// Limiter is an adaptive concurrency limit for the requests a server admits,
// with a queue in front of it. It wraps failsafe-go's adaptive limiter,
// which compares recent latency (p90 over a window of at least 100 ms and
// 20 requests) with a long-term baseline and lowers the limit when latency
// climbs with concurrency (work queueing in the process), raising it while
// latency holds.
//
// A request over the limit waits for a slot (first come, first served) while
// its own deadline allows: it is refused at once, unprocessed, if the
// expected wait plus the expected service time would not fit in what is left
// of its deadline (and of MaxWait), and refused when its allowance runs out
// in the queue. The expected wait is the requests queued ahead × the mean
// service time ÷ the limit. So a burst, or a closed loop of callers that
// outnumbers the limit, gets latency instead of errors, while a request that
// could not be served in time learns so at once and can go elsewhere. See
// overload.go for how sustained overload shortens the queue.
//
// A Limiter is safe for concurrent use; it starts no goroutines.
type Limiter struct {
	lim      adaptivelimiter.AdaptiveLimiter[any] // nil when disabled
	queue    bool
	maxWait  time.Duration
	minLimit int
	waiting  waitQueue

	service  atomic.Uint64 // mean service time of recorded requests, ns, float64 bits
	overload overload

	inFlight atomic.Int64
	admitted atomic.Uint64
	rejected atomic.Uint64
	waited   atomic.Uint64 // admitted after waiting in the queue
	late     atomic.Uint64 // rejected after waiting: the estimate was wrong
}

// NewLimiter returns a limiter. A zero config means DefaultLimiterConfig. It
// panics on a config that fails Validate: check it first where it comes from
// user input.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	l := &Limiter{}
	if cfg.Disabled {
		return l
	}
	cfg = cfg.withDefaults()
	l.queue, l.maxWait, l.minLimit = !cfg.NoQueue, cfg.MaxWait, cfg.MinLimit
	l.overload.epoch = time.Now()
	maxFactor := float64(limiterMaxFactor)
	if cfg.NoQueue {
		maxFactor = limiterMaxFactorNoQueue
	}
	l.lim = adaptivelimiter.NewBuilder[any]().
		WithLimits(uint(cfg.MinLimit), uint(cfg.MaxLimit), uint(cfg.InitialLimit)).
		WithMaxLimitStabilizationWindow(limiterStabilization).
		WithRecentWindow(limiterWindow, limiterMaxWindow, limiterSamples).
		WithBaselineWindow(limiterBaselineAge).
		WithMaxLimitFactor(maxFactor).
		Build()
	return l
}

// Acquire admits a request if the limit allows it, or once a slot frees
// while the request's allowance lasts (see Limiter; ctx's deadline is the
// request's). When ok, the caller must end the permit with exactly one call
// to Record or Drop; when not ok, it should refuse the request (503 with
// Retry-After) without doing its work.
func (l *Limiter) Acquire(ctx context.Context) (p Permit, ok bool) {
	if l.lim == nil {
		l.inFlight.Add(1)
		l.admitted.Add(1)
		return Permit{l: l}, true
	}
	now := time.Now()
	// A free slot is this one's if nobody waits for it.
	if l.waiting.len() == 0 && l.overload.underCap(l.inFlight.Load()) {
		if lp, ok := l.lim.TryAcquirePermit(); ok {
			l.overload.arrived(now, true)
			l.inFlight.Add(1)
			return l.admit(lp, now), true
		}
	}
	l.overload.arrived(now, false)
	if !l.queue {
		l.rejected.Add(1)
		return Permit{}, false
	}
	overloaded := l.overload.decide(now, l.inFlight.Load(), l.minLimit, l.meanService())
	if overloaded {
		// The backlog queued before overload was seen would make every
		// request accepted now slow: it is refused (see overload.go).
		l.waiting.shed()
	}
	allow := l.allowance(ctx, now, overloaded)
	// While overloaded, a request joins the queue only if it should be
	// served in half its (short) allowance: one that is refused after
	// waiting is not refused at once.
	admitWithin := allow
	if overloaded {
		admitWithin /= 2
	}
	if allow <= 0 || l.expectedWait(l.waiting.ahead(overloaded)) > admitWithin {
		l.rejected.Add(1)
		return Permit{}, false
	}
	lp, ok := l.waiting.wait(ctx, l, allow, overloaded)
	if !ok {
		l.rejected.Add(1)
		l.late.Add(1)
		return Permit{}, false
	}
	l.waited.Add(1)
	start := time.Now()
	l.overload.dequeued(start, start.Sub(now))
	return l.admit(lp, start), true
}

// admit makes the permit of a request counted in flight (by the caller, or
// by the hand-off that gave it a slot).
func (l *Limiter) admit(lp adaptivelimiter.Permit, start time.Time) Permit {
	l.admitted.Add(1)
	return Permit{l: l, p: lp, start: start}
}

// slot takes a free slot for a waiter, if the limit and the overload cap
// allow one, and counts it in flight.
func (l *Limiter) slot() (adaptivelimiter.Permit, bool) {
	if !l.overload.underCap(l.inFlight.Load()) {
		return nil, false
	}
	p, ok := l.lim.TryAcquirePermit()
	if ok {
		l.inFlight.Add(1)
	}
	return p, ok
}

// allowance is how long a request arriving at now may wait for a slot: what
// its deadline leaves once the mean service time is set aside, at most
// MaxWait, and at most the overload target while the queue is overloaded.
func (l *Limiter) allowance(ctx context.Context, now time.Time, overloaded bool) time.Duration {
	allow := l.maxWait
	if d, ok := ctx.Deadline(); ok {
		allow = min(allow, d.Sub(now)-l.meanService())
	}
	if overloaded {
		allow = min(allow, overloadTarget)
	}
	return allow
}

// expectedWait is how long a request joining the queue behind ahead others
// should wait: with n requests in flight taking the mean service time each,
// one completes every mean service time ÷ n (Little's law; n is what the
// mean was measured at, whatever the limit or cap says now).
func (l *Limiter) expectedWait(ahead int) time.Duration {
	n := max(l.inFlight.Load(), 1)
	return time.Duration(float64(ahead+1) * float64(l.meanService()) / float64(n))
}

// meanService is the mean time recorded requests spent admitted.
func (l *Limiter) meanService() time.Duration {
	return time.Duration(math.Float64frombits(l.service.Load()))
}

// serviceWeight is the weight of each new sample in the mean service time:
// about the last 16 requests count.
const serviceWeight = 1.0 / 16

// observeService folds one request's service time into the mean.
func (l *Limiter) observeService(d time.Duration) {
	for {
		old := l.service.Load()
		m := math.Float64frombits(old)
		next := float64(d)
		if m > 0 {
			next = m + serviceWeight*(float64(d)-m)
		}
		if l.service.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Stats returns the current limit and counts. Limit is 0 when the limiter is
// disabled (there is none).
func (l *Limiter) Stats() LimiterStats {
	s := LimiterStats{
		InFlight: int(l.inFlight.Load()),
		Admitted: l.admitted.Load(),
		Rejected: l.rejected.Load(),
		Waited:   l.waited.Load(),
		Late:     l.late.Load(),
	}
	if l.lim != nil {
		s.Limit = l.lim.Limit()
		s.Queued = l.waiting.len()
		s.Overloaded = l.overload.on.Load()
		s.Cap = int(l.overload.cap.Load())
		s.Overloads = l.overload.episodes.Load()
	}
	return s
}

// Permit is one admitted request. End it with exactly one call to Record or
// Drop, from any goroutine; later calls on the same Permit do nothing. Do not
// copy a Permit before ending it: each copy would release the slot.
type Permit struct {
	l     *Limiter
	p     adaptivelimiter.Permit // nil when the limiter is disabled
	start time.Time              // when it was admitted
}

// Record ends the request and feeds its latency (since admission) to the
// limit and to the mean service time. Use it for every request that ran to
// completion, failed or not.
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
		took := time.Since(p.start)
		if drop {
			p.p.Drop()
		} else {
			p.l.observeService(took)
			p.p.Record()
		}
		p.l.overload.completed(p.start, took, !drop)
		p.l.waiting.handOff(p.l)
	}
	*p = Permit{}
}
