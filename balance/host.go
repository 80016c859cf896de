package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/discovery"
)

// Outcome is how an attempt on a host ended, as the caller saw it.
type Outcome uint8

// Outcomes. Values other than these are treated as Canceled.
const (
	// Success: a response that is not a server failure (4xx included).
	Success Outcome = iota
	// Failure: a 5xx, or a connection broken after the request was sent.
	// It counts toward ejection and is recorded with at least
	// Config.FailurePenalty of latency.
	Failure
	// ConnectFailure: no connection (refused, dial timeout). Counted like
	// Failure.
	ConnectFailure
	// TimedOut: no answer in the time the attempt was given (an explicit
	// per-try timeout, or a silent instance: see Host.Quiet). Counted like
	// Failure, but it is no sign of life: the host stays quiet.
	TimedOut
	// Outrun: canceled because another instance answered the same call
	// first (a hedge won). Not a failure, but slow: the time it took so far
	// is a lower bound of its latency, doubled for each Outrun in a row (up
	// to Config.FailurePenalty) so that an instance that is slow every time
	// is avoided for longer each time, while an occasional straggler costs
	// little.
	Outrun
	// Refused: the instance refused the request unprocessed because it is
	// at its capacity (admission control's 503). Not a failure, and a sign
	// of life, but no sign of speed either: its instant answer must not make
	// the host look idle, or the balancer would send the most requests to
	// the hosts that refuse them (the others queue the requests they accept
	// and look slower). It is charged twice the host's estimate, doubled
	// again for each Refused in a row, up to Config.FailurePenalty (an
	// estimate already above it is charged as it is), so a host that keeps
	// refusing costs more until it serves again, and under an overload of
	// every host the requests spread as the refusals do.
	Refused
	// Canceled: the caller gave up for its own reasons. Neutral: no latency
	// is recorded and the consecutive-failure count is left as it is.
	Canceled
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case ConnectFailure:
		return "connect_failure"
	case TimedOut:
		return "timed_out"
	case Outrun:
		return "outrun"
	case Refused:
		return "refused"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// Host is the balancer's record of one instance: its latency estimate, its
// requests in flight and its ejection state. A Host stays the same for an
// instance ID as long as that instance is among the candidates passed to
// Pick. Its methods are safe for concurrent use and do not block beyond a
// short per-host lock in Finish.
type Host struct {
	b  *Balancer
	id string // == inst.Load().ID, immutable

	inst atomic.Pointer[discovery.Instance] // latest copy seen by Pick

	inFlight atomic.Int64

	// Liveness (see quiet.go), in nanoseconds since b.epoch: answered is
	// the last answer or, if later, the moment the host went from idle to
	// busy; heard is the last answer or, if later, the moment the host was
	// first picked from; silent is the last failed liveness check (0:
	// none).
	answered atomic.Int64
	heard    atomic.Int64
	silent   atomic.Int64
	checking atomic.Bool // a liveness check is in flight

	// The peak-EWMA estimate, in nanoseconds (float64 bits), and the time
	// of its last update, in nanoseconds since b.epoch. Pick reads both
	// without a lock, estimate first; Finish writes them under mu, stamp
	// first. So a reader never pairs a new estimate with the old stamp,
	// which could make a fresh peak look decayed.
	ewma  atomic.Uint64
	stamp atomic.Int64
	mu    sync.Mutex // serializes writers of ewma and stamp

	consecFail atomic.Int64
	outrun     atomic.Int64 // Outrun outcomes in a row
	refusals   atomic.Int64 // Refused outcomes in a row
	// ejectedUntil is the end of the current ejection in nanoseconds since
	// b.epoch, 0 if none. Set under b.mu; Pick clears it once it is past,
	// so that the steady state reads no clock.
	ejectedUntil atomic.Int64
	ejections    atomic.Int64
	refused      atomic.Int64
	// probe is the breaker's half-open state: after an ejection ends the
	// host is halfOpen, and the first Pick to choose it sends the one probe
	// (probeOut) whose outcome closes the breaker or ejects the host again.
	probe atomic.Int32

	// Failure-rate window, guarded by mu: outcomes in the current and the
	// previous half of EjectionConfig.RateWindow.
	winStart  int64
	cur, prev window

	// Guarded by b.mu.
	level     int   // ejections in the current streak; sets the next length
	lastUntil int64 // end of the last ejection, 0 if none
	removed   bool  // no longer among the candidates: never ejected again
}

// Breaker states of a host, as HostStats reports them.
const (
	BreakerClosed   = "closed"    // in rotation
	BreakerOpen     = "open"      // ejected
	BreakerHalfOpen = "half_open" // back after an ejection, on probation
)

// Values of Host.probe.
const (
	closed   int32 = iota
	halfOpen       // the next pick of the host is a probe
	probeOut       // a probe is in flight: picked only as a last resort
)

// window counts outcomes over part of the failure-rate window.
type window struct{ n, failed int64 }

// Instance returns the instance this host stands for, as last seen by Pick.
func (h *Host) Instance() discovery.Instance { return *h.inst.Load() }

// Start records a request sent to the host and returns its start time, to
// be passed to Finish.
func (h *Host) Start() time.Time {
	t := time.Now()
	if h.inFlight.Add(1) == 1 {
		// Busy from now: quiet time counts from here (see Quiet).
		h.answered.Store(int64(t.Sub(h.b.epoch)))
	}
	return t
}

// Finish records the end of a request begun with Start: one fewer in
// flight, its latency (unless Canceled), and its effect on ejection. Each
// Start must be matched by exactly one Finish. It returns the request's
// duration as it measured it, so callers need not read the clock again.
func (h *Host) Finish(start time.Time, o Outcome) time.Duration {
	h.inFlight.Add(-1)
	t := time.Now()
	took := t.Sub(start)
	if o >= Canceled {
		// A canceled probe proves nothing: the next pick probes again.
		h.probe.CompareAndSwap(probeOut, halfOpen)
		return took
	}
	b := h.b
	now := int64(t.Sub(b.epoch))
	if o == Success || o == Failure || o == Refused {
		// A sign of life, whatever the answer.
		h.answered.Store(now)
		h.heard.Store(now)
	}
	rtt := max(float64(took), 0)
	switch o {
	case Outrun:
		h.probe.CompareAndSwap(probeOut, halfOpen) // proves nothing either way
		h.refusals.Store(0)
		h.streak(now, rtt, 1, &h.outrun)
		return took
	case Refused:
		h.probe.CompareAndSwap(probeOut, halfOpen) // nor does a refusal
		h.outrun.Store(0)
		h.streak(now, max(h.estimate(now, b.tau), rtt), 2, &h.refusals)
		return took
	}
	h.refusals.Store(0)
	h.outrun.Store(0)
	if o != Success {
		rtt = max(rtt, float64(b.cfg.FailurePenalty))
	}
	tripped := h.observe(now, rtt, b.tau, o != Success, &b.cfg.Ejection)
	if p := h.probe.Load(); p != closed {
		// The breaker is half-open: this outcome decides it.
		if o == Success {
			h.probe.Store(closed)
			h.consecFail.Store(0)
		} else {
			b.reopen(h, now)
		}
		return took
	}
	if o == Success {
		h.consecFail.Store(0)
		return took
	}
	b.failed(h, now, tripped)
	return took
}

// streak charges an Outrun or Refused outcome, the row-th of its kind in a
// row: base × first, doubled for each one in a row before it, but never
// more than Config.FailurePenalty or base, whichever is more. It is no
// failure.
func (h *Host) streak(now int64, base, first float64, row *atomic.Int64) {
	b := h.b
	n := min(row.Add(1), 20)
	charge := min(base*first*float64(int64(1)<<(n-1)), max(base, float64(b.cfg.FailurePenalty)))
	h.observe(now, charge, b.tau, false, &b.cfg.Ejection)
}

// observe folds one latency sample (ns) taken at now into the estimate, and
// the outcome into the failure-rate window; it reports whether the failure
// rate over the window has reached the ejection threshold.
//
// Peak EWMA: a sample above the (decayed) estimate replaces it at once, so a
// host that slows down is avoided on its first slow answer; a lower sample
// pulls it down with weight 1-exp(-Δt/τ), Δt being the time since the last
// update, which makes the estimate a time-based EWMA with time constant τ
// whatever the request rate.
func (h *Host) observe(now int64, rtt, tau float64, failed bool, e *EjectionConfig) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := math.Float64frombits(h.ewma.Load())
	w := 1.0 // weight left on the old estimate
	if dt := now - h.stamp.Load(); dt > 0 {
		w = math.Exp(-float64(dt) / tau)
	} else {
		// A later Finish got the lock first: keep its stamp, so that time
		// never runs backwards for the estimate.
		now -= dt
	}
	next := rtt
	if decayed := old * w; rtt < decayed {
		next = decayed + rtt*(1-w)
	}
	h.stamp.Store(now)
	h.ewma.Store(math.Float64bits(next))
	return h.count(now, failed, e)
}

// count adds an outcome to the failure-rate window (two halves sliding by
// half a window) and reports whether the rate trips the breaker. Caller
// holds h.mu.
func (h *Host) count(now int64, failed bool, e *EjectionConfig) bool {
	half := int64(e.RateWindow / 2)
	if since := now - h.winStart; since >= half {
		h.prev = h.cur
		if since >= 2*half {
			h.prev = window{}
		}
		h.cur = window{}
		h.winStart = now - since%half
	}
	h.cur.n++
	if !failed {
		return false
	}
	h.cur.failed++
	n, f := h.cur.n+h.prev.n, h.cur.failed+h.prev.failed
	return n >= int64(e.MinRequests) && float64(f) >= e.FailureRate*float64(n)
}

// resetWindow forgets the failure-rate window: a host back from an ejection
// starts with a clean record.
func (h *Host) resetWindow() {
	h.mu.Lock()
	h.cur, h.prev = window{}, window{}
	h.mu.Unlock()
}

// estimate is the latency estimate (ns) at now: the last one decayed toward
// zero for the time since. Decaying while idle is what Finagle and Linkerd
// do: a host avoided for being slow regains a share after a while and gets
// re-measured, instead of losing every P2C comparison forever.
func (h *Host) estimate(now int64, tau float64) float64 {
	l := h.load()
	if dt := now - l.stamp; dt > 0 && l.e > 0 {
		return l.e * math.Exp(-float64(dt)/tau)
	}
	return l.e
}

// load is what a host's cost is made of.
type load struct {
	e     float64 // estimate (ns) as of stamp
	stamp int64
	n     int64 // requests in flight
}

func (h *Host) load() load {
	e := math.Float64frombits(h.ewma.Load()) // before stamp: see Host.ewma
	return load{e: e, stamp: h.stamp.Load(), n: max(h.inFlight.Load(), 0)}
}

// Cost classes, cheapest first. A host without an estimate costs 0 while
// idle, so a new instance is picked as soon as P2C draws it; while it has
// requests in flight it costs more than any host with an estimate (fewer
// in flight first), so it gets one request at a time until its first
// answer sets its estimate. This is Finagle's rule.
const (
	classIdleNew  = iota // no estimate, idle: cost 0
	classMeasured        // estimate × (in flight + 1), decayed
	classBusyNew         // no estimate, busy: a penalty
)

func (l load) class() int {
	switch {
	case l.e > 0:
		return classMeasured
	case l.n == 0:
		return classIdleNew
	}
	return classBusyNew
}

// cheaper reports whether x costs strictly less than y, where cost =
// estimate × exp(-(now-stamp)/τ) × (in flight + 1). The factor exp(-now/τ)
// is common to both sides, so the comparison needs no clock:
//
//	x < y  ⟺  eₓ(nₓ+1) < e_y(n_y+1)·exp(d),  d = (stamp_y - stampₓ)/τ
//
// exp is a quarter of a pick's time, and d is tiny when both hosts are in
// use (stamps milliseconds apart, τ seconds), so the bounds 1+d ≤ exp(d) ≤
// 1/(1-d) (for d < 1), a d² apart, settle the comparison without it except
// in a near tie.
func (x load) cheaper(y load, tau float64) bool {
	cx, cy := x.class(), y.class()
	switch {
	case cx != cy:
		return cx < cy
	case cx == classIdleNew:
		return false
	case cx == classBusyNew:
		return x.n < y.n
	}
	lhs, rhs := x.e*float64(x.n+1), y.e*float64(y.n+1)
	d := float64(y.stamp-x.stamp) / tau
	switch {
	case lhs < rhs*(1+d):
		return true
	case d < 1 && lhs >= rhs/(1-d):
		return false
	}
	// Overflow to +Inf or underflow to 0 still orders the two correctly.
	return lhs < rhs*math.Exp(d)
}

// ejectedAt reports whether the host is ejected at now.
func (h *Host) ejectedAt(now int64) bool {
	u := h.ejectedUntil.Load()
	return u != 0 && now < u
}

// ejected is ejectedAt for Pick: it reads the clock only for a host with an
// ejection set, and clears an ejection that is over, which makes the
// breaker half-open. That is how ejection ends: lazily, with no timer. A
// host whose half-open probe is in flight counts as ejected too, so that
// only the probe tests it.
func (h *Host) ejected(clk *clock) bool {
	u := h.ejectedUntil.Load()
	if u == 0 {
		return h.probe.Load() == probeOut
	}
	if clk.get() < u {
		return true
	}
	// A new ejection cannot store u again (it ends after now ≥ u), so this
	// never clears one.
	if h.ejectedUntil.CompareAndSwap(u, 0) {
		h.probe.Store(halfOpen)
	}
	return h.probe.Load() == probeOut
}

// picked marks h as chosen by Pick: if its breaker is half-open, this
// request is the probe.
func (h *Host) picked() *Host {
	if h.probe.Load() == halfOpen {
		h.probe.CompareAndSwap(halfOpen, probeOut)
	}
	return h
}

// Unpick gives back a host that Pick returned but that will not be sent
// the request after all (the retry or hedge budget refused it, its body
// could not be replayed). Without it, a half-open host picked as its probe
// would wait for a probe that never comes. It is not needed after Start.
func (h *Host) Unpick() {
	h.probe.CompareAndSwap(probeOut, halfOpen)
}

// Breaker returns the host's breaker state now: BreakerClosed,
// BreakerOpen (ejected) or BreakerHalfOpen. Tracing notes it on each
// attempt, after Finish, so a span shows the attempt that ejected a host.
func (h *Host) Breaker() string { return h.breaker(h.b.nanotime()) }

// breaker is the host's breaker state at now.
func (h *Host) breaker(now int64) string {
	switch {
	case h.ejectedAt(now):
		return BreakerOpen
	case h.probe.Load() != closed || h.ejectedUntil.Load() != 0:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// setInstance records the latest copy of the host's instance (its state or
// address may change while its ID stays). Allocates only on change.
func (h *Host) setInstance(in discovery.Instance) {
	if cur := h.inst.Load(); cur != nil && *cur == in {
		return
	}
	h.inst.Store(&in)
}
