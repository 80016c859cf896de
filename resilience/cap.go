package resilience

import (
	"sync"
	"sync/atomic"
	"time"
)

// capper caps the requests in flight below the adaptive limit while
// requests wait for slots. With a queue in front, a request let into the
// process early gains nothing if the process only queues it inside (its CPU
// or a worker pool is the bottleneck): it just waits there instead, where
// its deadline is not checked, it cannot be refused in time, and its wait
// inflates the service time of every request admitted with it. failsafe-go's
// limit cannot tell that apart from a process that waits on something else
// (a dependency, whose latency more requests in flight do not change), and
// its baseline follows the latency of a long queue, so its limit drifts up.
//
// So the cap probes. While the limit binds, it measures the throughput of
// the requests admitted (kept to the last probeSamples to 2×probeSamples of
// them); a probe halves the requests in flight (the first probe of a
// binding limit quarters them: that limit grew while all was calm) and,
// once they have drained to the new cap, measures the throughput of the
// next probeSamples requests admitted. If it held, within probeLoss,
// against the throughput before the cut (the process queued inside: the
// service time fell with the requests in flight), the cap stays, and the
// next probe cuts again at once, from what was just measured, down to the
// limiter's minimum; if it fell (the latency is elsewhere), the cap goes
// back, and the next probe waits probeEvery, doubling up to probeMaxEvery,
// so that a process bound by its dependencies loses little to probes. The
// cap is dropped in the first window in which no request found the limit
// binding, and re-probed after capHold, since the process may take more by
// then. Measuring before any probe is due means that the first cut of an
// overload comes as soon as it may, not a measure later: every request
// admitted above what the process can take meanwhile waits inside it.
//
// Throughput is measured by Little's law, per request: the requests in
// flight when it was admitted ÷ its service time, summed over requests
// (ΣL ÷ ΣS). Counting completions per second instead is at the mercy of
// waves (requests admitted together complete together, so 10 completions
// may fall in one instant or straddle a window) and of a rate measured
// before the instance was ever saturated; a request's own service time and
// the requests it was admitted with are exact. Both throughputs are
// measured on requests admitted while the limit binds (the cap for the
// second): a mean over earlier requests would mix in the ramp of a cold
// instance (requests admitted with 1, 2, ... 20 in flight), which
// understates what it completes with 20.
type capper struct {
	cap atomic.Int64 // the most requests in flight; 0: no cap

	// The samples of the probe: requests admitted from sampleFrom (Unix ns;
	// 0: not sampling) and ended, their summed service times and requests
	// in flight at admission.
	sampleFrom atomic.Int64
	sampleS    atomic.Int64
	sampleL    atomic.Int64
	sampleN    atomic.Int64

	mu        sync.Mutex // held by the caller of window
	phase     phase      // of the probe in progress
	started   time.Time  // when the probe's phase began
	prev      int64      // the cap before the probe (0: none)
	before    float64    // the throughput before the probe, requests/s
	next      time.Time  // no probe starts before
	wait      time.Duration
	loweredAt time.Time // when the cap was last lowered
}

// phase is how far a probe has come.
type phase int

const (
	idle      phase = iota // no probe
	measuring              // the throughput before the cut
	draining               // the cut: down to the cap
	judging                // the throughput under the cap
)

const (
	probeSamples  = 10
	probeLoss     = 0.1
	probeRTTs     = 5
	probeEvery    = time.Second
	probeMaxEvery = 30 * time.Second
	capHold       = 30 * time.Second
)

// Why these values: probeSamples 10 requests tell a halving of the
// throughput from none well beyond the noise of their service times;
// probeLoss 10% is the throughput a kept cap may cost, within that noise; a
// probe whose phase has not ended within probeRTTs mean service times (at
// least one overloadWindow) is abandoned, as failed once the cap was cut,
// the process being too slow to tell in time; probeEvery 1 s to probeMaxEvery 30 s
// bound what failed probes cost a process bound by its dependencies to a
// short throughput dip every so often; and capHold 30 s re-probes a cap
// kept for long, as the work may have changed.

// allows reports whether one more request may be admitted with inFlight in
// flight.
func (c *capper) allows(inFlight int64) bool {
	cp := c.cap.Load()
	return cp == 0 || inFlight < cp
}

// sample starts sampling the requests admitted from now on. Caller holds c.mu.
func (c *capper) sample(now time.Time) {
	c.sampleS.Store(0)
	c.sampleL.Store(0)
	c.sampleN.Store(0)
	c.sampleFrom.Store(now.UnixNano())
}

// sampled is the throughput of the requests sampled, if there are enough.
func (c *capper) sampled() (float64, bool) {
	if c.sampleN.Load() < probeSamples {
		return 0, false
	}
	return float64(c.sampleL.Load()) / time.Duration(c.sampleS.Load()).Seconds(), true
}

// completed samples a request admitted at start with load requests in
// flight (itself included) that took service, if the probe samples it.
func (c *capper) completed(start time.Time, service time.Duration, load int64) {
	if from := c.sampleFrom.Load(); from == 0 || start.UnixNano() < from {
		return
	}
	c.sampleS.Add(int64(service))
	c.sampleL.Add(load)
	c.sampleN.Add(1)
}

// window moves the cap on at the end of a window, at now: w is the window,
// inFlight the requests in flight now, floor the limiter's minimum limit,
// and service the limiter's recent mean service time (0: none yet).
func (c *capper) window(now time.Time, w window, inFlight int64, floor int, service time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !w.bound {
		// Every request found a free slot: nothing to cap.
		c.cap.Store(0)
		c.stop()
		c.next, c.wait = time.Time{}, probeEvery
		return
	}
	if cp := c.cap.Load(); cp != 0 && c.phase <= measuring && now.Sub(c.loweredAt) > capHold {
		c.cap.Store(0) // probe again from the whole limit
		c.stop()
		return
	}
	timedOut := now.Sub(c.started) > probeRTTs*max(service, overloadWindow)
	switch c.phase {
	case idle:
		c.measure(now)
	case measuring:
		before, ok := c.sampled()
		next := c.cut(inFlight, floor)
		switch {
		case !ok:
			if timedOut {
				c.measure(now)
			}
		case (w.grew && !w.overloaded) || now.Before(c.next) || next >= c.from(inFlight):
			// No probe yet: keep the measure recent. While the queue
			// grows and overload is not yet decided, a cut would hide
			// it: the completions it costs a failed probe would look
			// like a stall (see drain).
			if c.sampleN.Load() >= 2*probeSamples {
				c.measure(now)
			}
		default:
			c.phase, c.started, c.before, c.prev = draining, now, before, c.cap.Load()
			c.sampleFrom.Store(0)
			c.cap.Store(next)
		}
	case draining:
		switch {
		case inFlight <= c.cap.Load():
			c.phase, c.started = judging, now // requests admitted from now on are served under the cap
			c.sample(now)
		case timedOut:
			c.fail(now)
		}
	case judging:
		after, ok := c.sampled()
		switch {
		case ok && after >= (1-probeLoss)*c.before:
			// Kept. What was measured under it is what the next probe,
			// at once, cuts from.
			c.phase, c.started = measuring, now
			c.loweredAt, c.next, c.wait = now, now, probeEvery
		case ok || timedOut:
			c.fail(now)
		}
	}
}

// measure starts measuring the throughput before a cut, at now. Caller
// holds c.mu.
func (c *capper) measure(now time.Time) {
	c.phase, c.started = measuring, now
	c.sample(now)
}

// from is the requests in flight a probe cuts from: the cap, or all those
// in flight if there is none.
func (c *capper) from(inFlight int64) int64 {
	if cp := c.cap.Load(); cp != 0 {
		return cp
	}
	return inFlight
}

// cut is the cap a probe tries.
func (c *capper) cut(inFlight int64, floor int) int64 {
	by := int64(2)
	if c.cap.Load() == 0 {
		by = 4
	}
	return max(c.from(inFlight)/by, int64(max(floor, 1)))
}

// stop ends a probe's sampling. Caller holds c.mu.
func (c *capper) stop() {
	c.phase = idle
	c.sampleFrom.Store(0)
}

// fail ends a probe that cost throughput: the cap goes back, and the next
// probe waits longer. Caller holds c.mu.
func (c *capper) fail(now time.Time) {
	c.cap.Store(c.prev)
	w := max(c.wait, probeEvery)
	c.next, c.wait = now.Add(w), min(2*w, probeMaxEvery)
	c.measure(now)
}
