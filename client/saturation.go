package client

import (
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// A hedge is worth sending when the instance is slow, not when this process
// is: a process whose goroutines queue for a CPU (a gateway at its peak, a
// machine full of other work) sees every attempt late, and a hedge only
// adds a request to the load that made it late. So before a hedge goes out,
// the client asks how long a runnable goroutine has lately waited for a CPU
// here (the Go scheduler's own histogram, /sched/latencies:seconds); when
// that wait is a sizable part of the hedge delay, the attempt's lateness is
// (at least partly) ours, and the hedge waits another delay, until the
// answer or the attempt's timeout comes, or the queue drains.

// localLagShare: the hedge waits while the local scheduling lag is at
// least this share of the hedge delay. An attempt crosses the scheduler a
// few times (sent, answer read, handed back), so a lag of a quarter of the
// delay is most of it.
const localLagShare = 4

// lagWindow is how often the lag is read again, and so how far back it
// looks when calls are steady: long enough to hold many scheduling events,
// short enough to follow a burst.
const lagWindow = 50 * time.Millisecond

// lagGauge estimates the recent scheduling lag of this process: the 90th
// percentile of the time runnable goroutines waited for a CPU since the
// previous reading. It reads runtime/metrics at most every lagWindow, on
// the calling goroutine, and only when asked (before a hedge), so a process
// that does not hedge pays nothing. Safe for concurrent use.
type lagGauge struct {
	lag atomic.Int64 // ns, the last estimate

	mu     sync.Mutex
	read   time.Time // of the last reading
	sample []metrics.Sample
	prev   []uint64 // bucket counts at the last reading
}

// processLag is the process's gauge: the scheduler is the process's, not a
// transport's.
var processLag lagGauge

// Lag returns the recent scheduling lag, reading the scheduler's histogram
// again if the last reading is older than lagWindow (and no other goroutine
// is reading it now).
func (g *lagGauge) Lag(now time.Time) time.Duration {
	if !g.mu.TryLock() {
		return time.Duration(g.lag.Load())
	}
	defer g.mu.Unlock()
	if now.Sub(g.read) < lagWindow {
		return time.Duration(g.lag.Load())
	}
	if g.sample == nil {
		g.sample = []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	}
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0 // not this runtime's metric: no estimate
	}
	h := g.sample[0].Value.Float64Histogram()
	lag := time.Duration(0)
	if g.prev != nil && len(g.prev) == len(h.Counts) {
		lag = percentile90(h, g.prev)
	}
	g.prev = append(g.prev[:0], h.Counts...)
	g.read = now
	g.lag.Store(int64(lag))
	return lag
}

// percentile90 is the 90th percentile of the events counted in h since
// prev (the upper bound of its bucket), or 0 with too few events to tell.
func percentile90(h *metrics.Float64Histogram, prev []uint64) time.Duration {
	var n uint64
	for i, c := range h.Counts {
		n += c - prev[i]
	}
	if n < 20 {
		return 0
	}
	rank := uint64(math.Ceil(0.9 * float64(n)))
	var seen uint64
	for i, c := range h.Counts {
		if seen += c - prev[i]; seen >= rank {
			top := h.Buckets[i+1] // bucket i is [Buckets[i], Buckets[i+1])
			if math.IsInf(top, 1) {
				top = h.Buckets[i]
			}
			return time.Duration(top * float64(time.Second))
		}
	}
	return 0
}

// localLate reports whether this process's own scheduling lag is enough of
// the hedge delay that an attempt late by that delay is late because of
// us.
func (t *Transport) localLate(delay time.Duration) bool {
	lag := t.lag(time.Now())
	return lag > 0 && lag*localLagShare >= delay
}
