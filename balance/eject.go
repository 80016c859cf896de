package balance

import (
	"math"
	"time"
)

// failed counts a Failure or ConnectFailure of h at now and ejects h when
// the consecutive failures reach the threshold, or tripped (the failure rate
// over the window did), and the cap allows it.
func (b *Balancer) failed(h *Host, now int64, tripped bool) {
	n := h.consecFail.Add(1)
	e := b.cfg.Ejection
	if e.Disabled || (n < int64(e.ConsecutiveFailures) && !tripped) || h.ejectedAt(now) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Re-check under the lock: a Success may have reset the count, another
	// Finish may have ejected h already, or h may have left the set.
	if h.removed || h.ejectedAt(now) || (!tripped && h.consecFail.Load() < int64(e.ConsecutiveFailures)) {
		return
	}
	b.eject(h, now)
}

// silenced ejects h because it failed a liveness check, at once, if the
// cap allows it. One failed outcome is no proof of a dead instance, hence
// ConsecutiveFailures; a failed check is: the instance held requests,
// answered none of them and not even the check, which a live server
// answers before any handler. Waiting for failures instead would leave it
// in rotation as long as hedges win its attempts (Outrun is no failure),
// and each pick of it would cost a hedge, or a quiet period and a check.
// A failed probe of a half-open h ejects it again for the next length.
func (b *Balancer) silenced(h *Host, now int64) {
	if h.probe.Load() != closed {
		b.reopen(h, now)
		return
	}
	b.failed(h, now, true)
}

// reopen ejects h again because its half-open probe failed: at once, for
// the next length in its streak, if the cap allows it; otherwise h stays
// half-open and the next pick probes it again.
func (b *Balancer) reopen(h *Host, now int64) {
	h.consecFail.Add(1)
	if b.cfg.Ejection.Disabled {
		h.probe.Store(closed)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.removed || h.ejectedAt(now) {
		return
	}
	if !b.eject(h, now) {
		h.probe.CompareAndSwap(probeOut, halfOpen)
	}
}

// eject opens h's breaker for the next ejection time of its streak, unless
// the MaxFraction cap refuses. Caller holds b.mu.
func (b *Balancer) eject(h *Host, now int64) bool {
	e := b.cfg.Ejection
	s := b.set.Load()
	ejected := 0
	for _, o := range s.all {
		if o != h && o.ejectedAt(now) {
			ejected++
		}
	}
	if ejected+1 > maxEjected(len(s.all), e.MaxFraction) {
		h.refused.Add(1)
		return false
	}
	// A host that stayed in for MaxTime since its last ejection ended has
	// behaved: its next ejection is short again.
	if h.lastUntil != 0 && now-h.lastUntil >= int64(e.MaxTime) {
		h.level = 0
	}
	h.level = min(h.level+1, 64)
	h.lastUntil = now + int64(ejectionTime(h.level, e.BaseTime, e.MaxTime))
	h.probe.Store(closed)
	h.ejectedUntil.Store(h.lastUntil)
	h.ejections.Add(1)
	// The count and the window start over. Failures while ejected (when
	// picked as a last resort) count toward the next ejection, due as soon
	// as this one ends.
	h.consecFail.Store(0)
	h.resetWindow()
	return true
}

// maxEjected is how many of n hosts may be ejected at once: the fraction
// rounded down, at least one (as Envoy's max_ejection_percent, so a small
// fraction of a small service does not turn ejection off), and never all.
func maxEjected(n int, fraction float64) int {
	if n <= 1 {
		return 0
	}
	// The epsilon absorbs float error such as 0.29*100 = 28.999….
	m := max(int(math.Floor(fraction*float64(n)+1e-9)), 1)
	return min(m, n-1)
}

// ejectionTime is the length of the level-th ejection in a row (level ≥ 1):
// base doubled level-1 times, capped at maxTime.
func ejectionTime(level int, base, maxTime time.Duration) time.Duration {
	d := base
	for i := 1; i < level; i++ {
		if d > maxTime/2 {
			return maxTime
		}
		d *= 2
	}
	return min(d, maxTime)
}
