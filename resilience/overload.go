package resilience

import (
	"sync"
	"sync/atomic"
	"time"
)

// Overload, as the admission queue sees it, is more requests arriving than
// the instance completes, for long enough that it is no burst: the queue
// never empties and keeps growing. A queue that stays long but stable (a
// closed loop of callers that outnumber the limit, a burst being worked
// off) is not overload: its requests are served in their turn, and turning
// them away would only make errors of latency. A queue that keeps growing
// would grow until every request waits nearly its whole deadline; the
// requests refused for lack of time are then the same number, but every
// accepted one is slow. So while the queue is overloaded a request joins it
// only if it should wait under half of overloadTarget (CoDel's 5 ms), so
// accepted requests stay fast and refusals stay instant, and the backlog
// queued before overload was seen is refused (requests arriving during
// overload are served first).
//
// A closed loop whose callers retry a refusal at once (or start their next
// journey) looks just like an open-loop excess to the instance: every
// refusal comes back as a new arrival. So overload is entered only after
// overloadEnterWindows windows of growth in a row: a burst, a phase change
// of the loop or a moment without CPU grows the queue for one window, not
// two. Once entered by such a loop it can sustain itself, though (see
// docs/ARCHITECTURE.md, limits).
//
// Whenever the limit binds (requests wait for slots), overloaded or not,
// the requests in flight are also capped by probing (see probe): cutting
// them shows whether the process queues work inside (service time falls
// with them: keep the cap) or waits on something else (it does not: lift
// it). failsafe-go's limit cannot tell the two apart, and its baseline
// follows the latency of a long overload, so without the cap the process's
// own queue grows back. The cap is dropped as soon as a request finds a
// free slot, and probed anew after capHold.
//
// The state is decided once per window (overloadWindow, or long enough for
// about ten completions and one service time), lazily, by the first request
// that finds no free slot: overloaded once, for overloadEnterWindows windows
// in a row, the queue never emptied (no request was admitted without
// waiting, or after waiting less than overloadTarget) and at least
// overloadGrowth more requests arrived than completed; it stays overloaded
// until, for overloadExitWindows windows in a row, fewer than overloadExit
// more arrived than completed (its queue is short on purpose then, and a
// noisy window must not undo it).
const (
	overloadWindow       = 50 * time.Millisecond
	overloadGrowth       = 0.5
	overloadEnterWindows = 2
	overloadExit         = 0.2
	overloadExitWindows  = 3
	overloadTarget       = 5 * time.Millisecond
)

// Probing the in-flight cap: a probe halves the cap (the first quarters the
// requests in flight; not below the limiter's minimum) and keeps it if the
// mean service time of the probeSamples requests admitted under it fell by
// at least half of what the cut predicts if the process queues inside (a
// halving: to 75%); a probe that does not end within probeRTTs mean service
// times failed. After a failed probe the next waits twice as long as the
// last wait, from probeEvery up to probeMaxEvery, so a process whose
// latency is its dependencies' loses little throughput to probes. A cap
// held for capHold is dropped and probed anew: the process may take more.
const (
	probeSamples  = 10
	probeRTTs     = 5
	probeEvery    = time.Second
	probeMaxEvery = 30 * time.Second
	capHold       = 30 * time.Second
)

// overload detects a growing queue and caps requests in flight while it
// lasts. arrived, dequeued and completed are called on every request and
// take no lock; decide takes a mutex once per window.
type overload struct {
	epoch     time.Time // set by NewLimiter
	arrivals  atomic.Int64
	completes atomic.Int64
	lastEmpty atomic.Int64 // ns since epoch: a request found the queue empty (or nearly)
	lastFree  atomic.Int64 // ns since epoch: a request found a free slot
	on        atomic.Bool
	episodes  atomic.Uint64 // times the queue became overloaded
	cap       atomic.Int64  // the most requests in flight while overloaded; 0: none

	// The probe in progress: service times of the requests admitted since
	// probeStart (ns since epoch; 0: none).
	probeStart atomic.Int64
	probeSum   atomic.Int64
	probeN     atomic.Int64

	mu          sync.Mutex
	windowStart int64 // ns since epoch
	arrivals0   int64 // counts when the window started
	completes0  int64
	calm        int           // windows in a row, while overloaded, with few arrivals
	growing     int           // windows in a row, while not, with a growing queue
	nextProbe   int64         // ns since epoch
	wait        time.Duration // before the next probe after a failed one
	before      time.Duration // mean service time when the probe started
	probeFrom   int64         // requests in flight allowed before the probe
	prevCap     int64
	capSince    int64 // ns since epoch: when the cap was last lowered
	winSum      int64 // service time (ns) of the requests completed in the last window
	winN        int64

	// Service times of the requests completed in the current window.
	curSum atomic.Int64
	curN   atomic.Int64
}

// since is t in ns since o.epoch.
func (o *overload) since(t time.Time) int64 { return int64(t.Sub(o.epoch)) }

// arrived counts a request arriving at now; free says it found a free slot.
func (o *overload) arrived(now time.Time, free bool) {
	o.arrivals.Add(1)
	if free {
		t := o.since(now)
		o.lastEmpty.Store(t)
		o.lastFree.Store(t)
	}
}

// dequeued notes a request admitted at now after waiting waited.
func (o *overload) dequeued(now time.Time, waited time.Duration) {
	if waited < overloadTarget {
		o.lastEmpty.Store(o.since(now))
	}
}

// completed counts a request admitted at start that ended after service,
// recorded (not dropped) if recorded.
func (o *overload) completed(start time.Time, service time.Duration, recorded bool) {
	o.completes.Add(1)
	if !recorded {
		return
	}
	o.curSum.Add(int64(service))
	o.curN.Add(1)
	if ps := o.probeStart.Load(); ps != 0 && o.since(start) >= ps {
		o.probeSum.Add(int64(service))
		o.probeN.Add(1)
	}
}

// underCap reports whether one more request may be admitted with inFlight
// in flight.
func (o *overload) underCap(inFlight int64) bool {
	c := o.cap.Load()
	return c == 0 || inFlight < c
}

// decide reports whether the queue is overloaded at now, deciding it anew
// (and moving the probe on) if a window has passed. It is called only by
// requests that found no free slot. inFlight, minLimit and service are the
// limiter's requests in flight, minimum limit and mean service time.
func (o *overload) decide(now time.Time, inFlight int64, minLimit int, service time.Duration) bool {
	t := o.since(now)
	o.mu.Lock()
	defer o.mu.Unlock()
	// A window holds some ten completions, and at least one service time
	// (completions come in waves).
	window := max(overloadWindow, service, 10*service/time.Duration(max(inFlight, 1)))
	if t-o.windowStart < int64(window) {
		return o.on.Load()
	}
	arr, done := o.arrivals.Load(), o.completes.Load()
	ratio := float64(arr-o.arrivals0) / float64(max(done-o.completes0, 1))
	standing := o.lastEmpty.Load() < o.windowStart // the queue never emptied
	free := o.lastFree.Load() >= o.windowStart     // a request found a free slot
	was := o.on.Load()
	var on bool
	if was {
		// Once overloaded the queue is kept short on purpose, so only the
		// arrivals say when it is over: fewer than overloadExit more than
		// completed, overloadExitWindows windows in a row; or the longest
		// episode is over.
		o.calm++
		if ratio >= 1+overloadExit {
			o.calm = 0
		}
		on = o.calm < overloadExitWindows
		o.growing = 0
	} else {
		o.growing++
		if !standing || ratio < 1+overloadGrowth {
			o.growing = 0
		}
		on = o.growing >= overloadEnterWindows
	}
	if on && !was {
		o.episodes.Add(1)
		o.calm = 0
	}
	o.on.Store(on)
	o.windowStart, o.arrivals0, o.completes0 = t, arr, done
	o.winSum, o.winN = o.curSum.Swap(0), o.curN.Swap(0)
	switch {
	case !on && free:
		// A request found a free slot: the limit does not bind, nothing
		// to cap.
		o.cap.Store(0)
		o.probeStart.Store(0)
		o.nextProbe, o.wait = 0, probeEvery
	case o.cap.Load() != 0 && t-o.capSince > int64(capHold):
		// Capped for long: the process may take more now. Start over.
		o.cap.Store(0)
		o.probeStart.Store(0)
		o.nextProbe = t
	default:
		o.probe(t, inFlight, int64(max(minLimit, 1)), service)
	}
	return on
}

// failed ends a probe that did not pay: the cap goes back, and the next
// probe waits longer. Caller holds o.mu.
func (o *overload) failed(t int64) {
	o.cap.Store(o.prevCap)
	w := max(o.wait, probeEvery)
	o.nextProbe, o.wait = t+int64(w), min(2*w, probeMaxEvery)
	o.probeStart.Store(0)
}

// probe starts or ends a probe of the in-flight cap. Caller holds o.mu.
func (o *overload) probe(t, inFlight, floor int64, service time.Duration) {
	if ps := o.probeStart.Load(); ps != 0 {
		n := o.probeN.Load()
		switch {
		case n >= probeSamples:
			// Queueing inside, the service time falls with the requests in
			// flight; waiting on something else, it does not. Half the
			// fall counts.
			gain := 1 - (1-float64(o.cap.Load())/float64(o.probeFrom))/2
			if mean := time.Duration(o.probeSum.Load() / n); mean < time.Duration(gain*float64(o.before)) {
				o.nextProbe, o.wait = t, probeEvery // it queued inside: try lower at once
				o.capSince = t
				o.probeStart.Store(0)
			} else {
				o.failed(t)
			}
		case t-ps > probeRTTs*int64(max(o.before, overloadWindow)):
			o.failed(t) // too slow to tell: as good as failed
		}
		return
	}
	if t < o.nextProbe || service <= 0 {
		return
	}
	// The first probe of an overload cuts deeper: the limit it starts from
	// grew while all was calm, and every request let in above what the
	// process can take waits inside it.
	cur, cut := o.cap.Load(), int64(2)
	if cur == 0 {
		cur, cut = inFlight, 4
	}
	next := max(cur/cut, floor)
	switch {
	case next >= cur:
	case next == floor && cur <= 2*floor:
		// Down to the limiter's minimum, which always runs: too small a
		// cut to measure, and too small to cost much if it were wrong.
		o.cap.Store(next)
		o.capSince = t
	default:
		o.prevCap, o.probeFrom, o.before = o.cap.Load(), cur, service
		if o.winN > 0 {
			o.before = time.Duration(o.winSum / o.winN) // fresher than the mean
		}
		o.probeSum.Store(0)
		o.probeN.Store(0)
		o.cap.Store(next)
		o.probeStart.Store(t)
	}
}
