package resilience

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// drain watches, window by window, the requests in the system (waiting for a
// slot or in flight) and the completions, for two things:
//
//   - The drain rate: completions per second over the windows in which the
//     instance was saturated (no slot went unused). A request joining the
//     queue behind n others is served after n+1 completions, so its
//     expected wait is (n+1) ÷ the drain rate. It is measured, not derived
//     from the mean service time and the requests in flight (Little's law),
//     because the two move at different speeds: when the cap on requests
//     in flight fell from 40 to 6, the mean service time still said 40
//     requests' worth for a second, and Little's law then expected waits
//     seven times too long and refused callers that would have been served.
//
//   - Overload: an open-loop excess, more requests arriving than the
//     instance can complete, for as long as it lasts. A closed loop of
//     callers (each sends its next request when the last one is answered)
//     cannot be one: once every caller waits, the queue stops growing, and
//     serving them in turn gives latency, not errors. An open loop makes
//     the queue grow without end, until every request waits nearly its
//     whole deadline; the same requests are refused in the end, but every
//     accepted one is slow. So growth is what counts, measured as the
//     change in requests in the system, which refused requests never join:
//     a closed loop whose callers retry refusals at once offers many
//     requests but does not grow the queue.
//
// The instance is overloaded once, over overloadEnterWindows windows in a
// row, it was saturated in each, completed at least overloadFullRate of what
// its drain rate predicted (a stalled instance, paused or starved of CPU,
// grows its queue without any excess of arrivals; before a drain rate is
// measured, the limiter's throughput stands in for it) and the requests in
// the system grew by at least overloadGrowth of the completions (arrivals
// at 1.5× the completions), the newest window at the full rate and
// growing too (an excess lasts; a closed loop's wave of callers, or a stall
// just begun, does not). It stays overloaded until, overloadExitWindows
// windows in a row, fewer than 1+overloadExit requests arrive per
// completion (refused ones counted: its queue is short on purpose then, so
// only arrivals say when the excess is over). While overloaded, a request
// joins the queue only if nobody waits ahead of it or its expected wait is
// under OverloadTarget (Limiter.Acquire), so the accepted requests are
// served fast and the excess is refused at once. Of the requests queued
// before overload was seen, all but as many as are in flight (those are
// served within about one service time) are refused when it is
// (Limiter.tick): some 150 ms of an excess at 2× queue that many requests,
// each served after all those ahead of it, so each would be slower than
// OverloadTarget allows and, first in line, they would keep every request
// accepted after them waiting as long. They are the price of telling an
// excess from a burst, refused once instead of served late.
//
// Windows are closed lazily by the request that finds one over (tick); they
// last overloadWindow, or one mean service time (requests admitted together
// complete together: a window must hold such a wave), or long enough for
// windowCompletions completions at the drain rate, at most maxWindow. The
// test for growth sums the last overloadEnterWindows windows, so that a
// wave falling on either side of a window's end does not break it.
type drain struct {
	epoch time.Time // set by NewLimiter

	arrivals  atomic.Int64  // requests that asked for a slot, refused ones included
	completes atomic.Int64  // permits ended
	idled     atomic.Bool   // this window, a slot was free with nobody to take it
	bound     atomic.Bool   // this window, a request found no free slot
	closeAt   atomic.Int64  // ns since epoch: the window may close from then on
	drainRate atomic.Uint64 // completions per second while saturated, float64 bits
	on        atomic.Bool   // overloaded
	episodes  atomic.Uint64 // times the instance became overloaded

	mu                    sync.Mutex                 // held while closing a window
	start                 int64                      // ns since epoch: when the window began
	arrivals0, completes0 int64                      // the counts when the window began
	system0               int64                      // requests waiting or in flight then
	rateC, rateT          float64                    // decayed sums of completions and seconds of saturated windows
	last                  [overloadEnterWindows]span // the last windows closed, newest first
	calm                  int                        // windows in a row that were calm while overloaded
}

// span is what a closed window saw.
type span struct {
	completes int64
	expected  float64 // completions the drain rate before it predicted
	growth    int64   // change in the requests waiting or in flight
	saturated bool    // no slot went unused, and some request completed
}

const (
	overloadWindow       = 50 * time.Millisecond
	windowCompletions    = 5
	maxWindow            = time.Second
	overloadGrowth       = 0.5
	overloadFullRate     = 0.8
	overloadEnterWindows = 3
	overloadExit         = 0.2
	overloadExitWindows  = 3
	drainWeight          = 0.25
	rateCompletions      = 20
)

// OverloadTarget is the longest expected wait a request may join the queue
// for while the instance is overloaded (besides joining an empty queue):
// see drain and its "Why these values".
const OverloadTarget = 5 * time.Millisecond

// Why these values:
//
//   - overloadWindow 50 ms and windowCompletions 5: a window must hold a few
//     completions to measure a rate, and be short, since each window of an
//     open-loop excess at 2× adds as many requests to the queue as it
//     completes; at 100 completions/s a window is 50 ms. maxWindow bounds
//     it at very low rates.
//   - overloadEnterWindows 3: one burst of simultaneous arrivals (a closed
//     loop starting, callers arriving from another stage) falls in at most
//     two adjacent windows; three windows of growth are a sustained excess.
//     At 2× and 100/s, 150 ms of growth leaves 15 requests queued before
//     overload is seen, served late (half a percent of 30 s of requests).
//   - overloadGrowth 0.5: arrivals at 1.5× the completions; an overload at
//     2× grows by 1× the completions, a closed loop by none.
//   - overloadFullRate 0.8: a stall (a GC pause, a starved CPU) cuts the
//     completions while callers keep arriving; at 80% or more of the drain
//     rate, growth of 0.5× the completions needs arrivals at 1.2× the rate
//     the instance usually completes, which a stall does not produce.
//   - overloadExit 0.2 and overloadExitWindows 3: an open loop at 2× offers
//     twice the completions, one at capacity about as many; three windows
//     in a row so that one quiet window does not end overload.
//   - OverloadTarget 5 ms: CoDel's target, the standing queue delay it
//     tolerates; at high rates it admits a few waiters per slot, at low
//     rates only the one that keeps slots busy. Facebook's adaptive LIFO
//     cuts queue timeouts to the same 5 ms under a standing queue.
//   - drainWeight 0.25: the drain rate is the completions over the time of
//     the saturated windows, each window's weight decaying by a quarter per
//     window, so about the last four count (0.2 s at 100/s): recent enough
//     to follow a change of the limit or of the work, smooth enough for
//     waits of seconds.
//   - rateCompletions 20: the drain rate is used only once it rests on that
//     many (decayed) completions, over (decayed) windows as long as a mean
//     service time at least. The first saturated window of a cold instance
//     may hold one completion in 50 ms, a rate of 20/s for an instance that
//     completes 200/s, or a whole wave of 20 requests admitted together, a
//     rate of 400/s; waits expected from either would refuse callers that
//     could be served or admit callers that cannot, and an overload test
//     against it would be late. Until then expected waits come from the
//     limiter's throughput (Limiter.throughput).

// since is t in ns since d.epoch.
func (d *drain) since(t time.Time) int64 { return int64(t.Sub(d.epoch)) }

// arrived counts a request asking for a slot.
func (d *drain) arrived() { d.arrivals.Add(1) }

// completed counts a permit ended.
func (d *drain) completed() { d.completes.Add(1) }

// idle notes that a slot was free with nobody waiting for it.
func (d *drain) idle() {
	if !d.idled.Load() {
		d.idled.Store(true)
	}
}

// bind notes that a request found no free slot.
func (d *drain) bind() {
	if !d.bound.Load() {
		d.bound.Store(true)
	}
}

// overloaded reports whether the instance is overloaded now.
func (d *drain) overloaded() bool { return d.on.Load() }

// rate is the drain rate in completions per second; 0 before the instance
// was first saturated.
func (d *drain) rate() float64 { return math.Float64frombits(d.drainRate.Load()) }

// due reports whether the window may close at now (see tick).
func (d *drain) due(now time.Time) bool { return d.since(now) >= d.closeAt.Load() }

// window is what the limiter learns of a closed window.
type window struct {
	bound      bool // a request found no free slot
	began      bool // overload began at its end
	overloaded bool // the instance is overloaded at its end
	grew       bool // the requests in the system grew over the last windows (see drain.grew)
}

// tick closes the window if it is over at now, given the requests queued
// and in flight now, the mean service time and the limiter's recent
// throughput (what the completions are checked against until a drain rate
// is measured), and reports the window it closed. Only one caller closes a
// window; the others go on at once.
func (d *drain) tick(now time.Time, queued int, inFlight int64, service time.Duration, throughput float64) (window, bool) {
	t := d.since(now)
	if t < d.closeAt.Load() || !d.mu.TryLock() {
		return window{}, false
	}
	defer d.mu.Unlock()
	if t < d.closeAt.Load() {
		return window{}, false // another caller closed it meanwhile
	}
	dt := time.Duration(t - d.start).Seconds()
	arr, done := d.arrivals.Load(), d.completes.Load()
	a, c := arr-d.arrivals0, done-d.completes0
	system := int64(queued) + inFlight
	w := window{bound: d.bound.Swap(false)}
	rate := d.rate()
	if rate <= 0 {
		// An instance rarely saturated (one whose requests wait on a
		// database shared with others) may never measure a drain rate;
		// without a rate to fall short of, its stalls would pass for an
		// excess of arrivals.
		rate = throughput
	}
	cur := span{completes: c, expected: rate * dt, growth: system - d.system0, saturated: !d.idled.Swap(false) && c > 0}
	if cur.saturated {
		// A ratio of sums, not a mean of ratios: a window's rate is off by
		// a completion either side of its ends.
		d.rateC = (1-drainWeight)*d.rateC + float64(c)
		d.rateT = (1-drainWeight)*d.rateT + dt
		if d.rateC >= rateCompletions && d.rateT >= service.Seconds() {
			d.drainRate.Store(math.Float64bits(d.rateC / d.rateT))
		}
	}
	copy(d.last[1:], d.last[:])
	d.last[0] = cur
	if d.on.Load() {
		d.calm++
		if float64(a) > (1+overloadExit)*float64(c) {
			d.calm = 0
		}
		if d.calm >= overloadExitWindows {
			d.on.Store(false)
			d.last = [overloadEnterWindows]span{} // growth is measured afresh
		}
	} else if d.growing() {
		d.on.Store(true)
		d.episodes.Add(1)
		w.began = true
		d.calm = 0
	}
	w.overloaded, w.grew = d.on.Load(), d.grew()
	d.start, d.arrivals0, d.completes0, d.system0 = t, arr, done, system
	length := max(overloadWindow, service)
	if r := d.rate(); r > 0 {
		length = max(length, time.Duration(windowCompletions/r*float64(time.Second)))
	}
	d.closeAt.Store(t + int64(min(length, maxWindow)))
	return w, true
}

// growing reports whether the last overloadEnterWindows windows, taken
// together, show an open-loop excess: each saturated and, over all of them,
// the completions at overloadFullRate of what the drain rate predicted or
// more, and the requests in the system grown by overloadGrowth of them;
// the newest window too must have completed at overloadFullRate and grown
// by overloadGrowth of its own completions. An excess lasts, so its queue
// grows in every window at the full rate; a closed loop's wave (its
// callers arriving together after another step) grows the queue in one
// window and stops once they all wait, and a stall that begins in the
// newest window grows it with completions short. Both were seen at
// playback under bench/startup at C = 128: growth of 8, 2 and 1 over three
// windows of 17 completions, enough in sum, not in the last; and growth of
// 2, 0 and 11 with 3 completions in the last window against 5.6 expected.
// Caller holds d.mu.
func (d *drain) growing() bool {
	var c, expected float64
	for _, w := range d.last {
		if !w.saturated {
			return false
		}
		c += float64(w.completes)
		expected += w.expected
	}
	newest := d.last[0]
	return c >= overloadFullRate*expected && d.grew() &&
		float64(newest.completes) >= overloadFullRate*newest.expected &&
		newest.growth > 0 && float64(newest.growth) >= overloadGrowth*float64(newest.completes)
}

// grew reports whether the requests in the system grew, over the last
// overloadEnterWindows windows, by overloadGrowth of the completions or
// more, as an excess of arrivals (or a stall) makes them grow. Caller holds
// d.mu.
func (d *drain) grew() bool {
	var c, growth float64
	for _, w := range d.last {
		c += float64(w.completes)
		growth += float64(w.growth)
	}
	return growth >= overloadGrowth*c && growth > 0
}
