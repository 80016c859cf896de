package resilience

import (
	"cmp"
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
	c.MaxWait = cmp.Or(c.MaxWait, d.MaxWait)
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
// A request over the limit waits for a slot, first come first served, if
// its own deadline allows: it joins the queue only if the expected wait
// (with a margin, waitMargin) plus the mean service time fits in what is
// left of its deadline (and of MaxWait), and is refused at once,
// unprocessed, otherwise; it is refused when its allowance runs out in the
// queue (late: the estimate was wrong).
// The expected wait is the requests ahead ÷ the rate at which the instance
// completes requests while they wait (see drain.go). So a burst, or a closed
// loop of callers that outnumber the limit (a closed loop's queue stops
// growing once every caller waits: latency, not errors), is served in turn,
// while a request that could not be served in time learns so at once and
// can go elsewhere. An open-loop excess makes the queue grow without end;
// drain.go tells the two apart, and while the instance is overloaded a
// request joins only a queue of one (or of OverloadTarget's wait), so that
// the requests it accepts are served fast and the excess is refused at
// once; when it begins, the backlog beyond as many waiters as requests in
// flight is refused. Whenever requests wait, the requests in flight may also be capped
// below the limit (see cap.go).
//
// A Limiter is safe for concurrent use; it starts no goroutines.
type Limiter struct {
	lim      adaptivelimiter.AdaptiveLimiter[any] // nil when disabled
	queue    bool
	maxWait  time.Duration
	minLimit int
	waiting  waitQueue
	drain    drain  // the rate requests complete, and whether the queue grows
	cap      capper // the cap on requests in flight while requests wait

	service ewma // service time of recorded requests, ns
	load    ewma // requests in flight when they were admitted, themselves included

	inFlight  atomic.Int64
	admitted  atomic.Uint64
	rejected  atomic.Uint64
	waited    atomic.Uint64 // admitted after waiting in the queue
	late      atomic.Uint64 // refused after waiting: the estimate was wrong, or overload began
	abandoned atomic.Uint64 // given up by the caller while waiting
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
	l.drain.epoch = time.Now()
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
	l.drain.arrived()
	// A free slot is this one's if nobody waits for it.
	if l.waiting.len() == 0 && l.cap.allows(l.inFlight.Load()) {
		if lp, ok := l.lim.TryAcquirePermit(); ok {
			l.inFlight.Add(1)
			l.drain.idle() // the slot was free: the instance is not saturated
			l.tick(now)
			return l.admit(lp, now), true
		}
	}
	if !l.queue {
		l.rejected.Add(1)
		return Permit{}, false
	}
	l.drain.bind()
	l.tick(now)
	allow := l.maxWait
	if d, ok := ctx.Deadline(); ok {
		allow = min(allow, d.Sub(now)-l.meanService())
	}
	ahead := l.waiting.len()
	wait := l.expectedWait(ahead)
	join := allow > 0 && wait+time.Duration(waitMargin*float64(wait)) <= allow
	if l.drain.overloaded() {
		// A queue of one keeps every slot busy between arrivals; any
		// longer only delays the requests accepted.
		join = join && (ahead == 0 || wait <= OverloadTarget)
	}
	if !join {
		l.rejected.Add(1)
		return Permit{}, false
	}
	lp, ok, end := l.waiting.wait(ctx, l, allow)
	if !ok {
		l.rejected.Add(1)
		if end == waitGone {
			l.abandoned.Add(1)
		} else {
			l.late.Add(1)
		}
		return Permit{}, false
	}
	l.waited.Add(1)
	return l.admit(lp, time.Now()), true
}

// tick closes the drain's window, and moves the cap on, if a window has
// passed at now. When overload begins, the requests queued before it was
// seen are refused (see drain).
func (l *Limiter) tick(now time.Time) {
	if !l.drain.due(now) {
		return // the common case: no window to close, nothing to read
	}
	w, ok := l.drain.tick(now, l.waiting.len(), l.inFlight.Load(), l.meanService(), l.throughput())
	if !ok {
		return
	}
	if w.began {
		// As many waiters as requests in flight are served within about
		// one service time; the rest are refused (see drain). Acquire
		// counts them late.
		l.waiting.shed(int(l.inFlight.Load()))
	}
	l.cap.window(now, w, l.inFlight.Load(), l.minLimit, l.meanService())
}

// admit makes the permit of a request counted in flight (by the caller, or
// by the hand-off that gave it a slot).
func (l *Limiter) admit(lp adaptivelimiter.Permit, start time.Time) Permit {
	l.admitted.Add(1)
	return Permit{l: l, p: lp, start: start, load: l.inFlight.Load()}
}

// slot takes a free slot for a waiter, if the limit and the cap allow one,
// and counts it in flight.
func (l *Limiter) slot() (adaptivelimiter.Permit, bool) {
	if !l.cap.allows(l.inFlight.Load()) {
		return nil, false
	}
	p, ok := l.lim.TryAcquirePermit()
	if ok {
		l.inFlight.Add(1)
	}
	return p, ok
}

// waitMargin is the share of its expected wait by which a request's
// allowance must exceed it for the request to join the queue. The
// allowance already keeps the mean service time for after the wait, but a
// queue that callers keep full (a closed loop retrying its refusals) sits
// at the edge the join rule allows, so every waiter would be served with
// only the mean service time left, and about half of them would end past
// their deadline; with a drain rate estimated 2–3% high, a quarter of all
// the admitted requests did: work done for nothing
// (TestLimiterQueueServesThroughRetryStorm failed about 1 run in 100,
// goodput 65–76% of capacity). With the margin a
// waiter is served with a tenth of its wait to spare, and an estimate
// short by up to that much costs nothing; the queue is a tenth shorter.
const waitMargin = 0.1

// expectedWait is how long a request joining the queue behind ahead others
// should wait: it is served after ahead+1 completions, which come at the
// drain rate. Until a drain rate has been measured, the recent throughput
// stands in for it; with neither yet, the wait is taken to be short.
func (l *Limiter) expectedWait(ahead int) time.Duration {
	rate := l.drain.rate()
	if rate <= 0 {
		rate = l.throughput()
	}
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(ahead+1) / rate * float64(time.Second))
}

// meanService is the mean time recent recorded requests spent admitted.
func (l *Limiter) meanService() time.Duration { return time.Duration(l.service.value()) }

// throughput is the requests per second the instance completed recently,
// by Little's law over the same recent requests: the requests in flight
// they were admitted with ÷ their service time. Both means follow the
// requests themselves, so a cut of the requests in flight shows in it as
// soon as the requests admitted under the cut complete (the requests in
// flight now ÷ the mean service time would mix the two eras). 0 before any
// request was recorded.
func (l *Limiter) throughput() float64 {
	s := l.service.value()
	if s <= 0 {
		return 0
	}
	return l.load.value() / s * float64(time.Second)
}

// ewmaWeight is the weight of each new sample in the limiter's means: about
// the last 16 requests count.
const ewmaWeight = 1.0 / 16

// ewma is an exponentially weighted moving mean, safe for concurrent use.
type ewma struct{ bits atomic.Uint64 } // float64 bits; 0: no sample yet

func (e *ewma) value() float64 { return math.Float64frombits(e.bits.Load()) }

// observe folds one sample into the mean.
func (e *ewma) observe(x float64) {
	for {
		old := e.bits.Load()
		m, next := math.Float64frombits(old), x
		if m > 0 {
			next = m + ewmaWeight*(x-m)
		}
		if e.bits.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Stats returns the current limit and counts. Limit is 0 when the limiter is
// disabled (there is none).
func (l *Limiter) Stats() LimiterStats {
	s := LimiterStats{
		InFlight:  int(l.inFlight.Load()),
		Admitted:  l.admitted.Load(),
		Rejected:  l.rejected.Load(),
		Waited:    l.waited.Load(),
		Late:      l.late.Load(),
		Abandoned: l.abandoned.Load(),
	}
	if l.lim != nil {
		s.Limit = l.lim.Limit()
		s.Queued = l.waiting.len()
		s.Overloaded = l.drain.overloaded()
		s.Overloads = l.drain.episodes.Load()
		s.Cap = int(l.cap.cap.Load())
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
	load  int64                  // requests in flight then, itself included
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
	l := p.l
	if l == nil {
		return
	}
	l.inFlight.Add(-1)
	if p.p != nil {
		now := time.Now()
		took := now.Sub(p.start)
		if drop {
			p.p.Drop()
		} else {
			l.service.observe(float64(took))
			l.load.observe(float64(p.load))
			l.cap.completed(p.start, took, p.load)
			p.p.Record()
		}
		l.drain.completed()
		if !l.waiting.handOff(l) {
			l.drain.idle() // nobody took the slot
		}
		l.tick(now)
	}
	*p = Permit{}
}
