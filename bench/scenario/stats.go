package main

import (
	"slices"
	"time"

	"github.com/shoal-dev/shoal/bench/internal/stats"
)

// metrics are one arm's measured values, keyed by the column keys below.
// Latencies are in milliseconds, fractions in [0, 1].
type metrics map[string]float64

// Column keys. The common ones are filled by summarize; the others by the
// scenario that shows them.
const (
	kRequests    = "requests"     // requests sent in the measured window
	kSuccess     = "success"      // fraction answered 2xx within the deadline
	kFailed      = "failed"       // requests not answered 2xx
	kP50         = "p50"          // latency of every request, answered or not
	kP99         = "p99"          //
	kP999        = "p999"         //
	kMax         = "max"          //
	kOffered     = "offered_rps"  // offered load, requests per second
	kLoad        = "load_rps"     // requests that reached the replicas, per second
	kLoadX       = "load_x"       // ... per request offered
	kNoFaultP99  = "nofault_p99"  // slow-replica: p99 before the fault, same arm
	kFaultyShare = "faulty_share" // slow-replica: share of answers from the slow one
	kGoodput     = "goodput_rps"  // overload: 2xx per second
	kCapacity    = "capacity_rps" // overload: measured capacity (closed loop)
	kUnloadedP99 = "unloaded_p99" // overload: p99 at a tenth of capacity
	kRejected    = "rejected"     // overload: failures answered before the deadline
	kRejectP99   = "reject_p99"   // overload: their p99 latency
	kAcceptedP99 = "accepted_p99" // overload: p99 latency of the 2xx
	kAcceptLate  = "accept_later" // ... of those sent after the onset
	kExtra       = "extra"        // stragglers: load_x - 1
	kLoadC       = "load_c_rps"   // chain: requests that reached C, per second
	kLoadCX      = "load_c_x"     // ... per request offered at A
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// window returns the records sent in [from, to); to ≤ 0 means no end.
func window(rs []record, from, to time.Duration) []record {
	var out []record
	for _, r := range rs {
		if r.at >= from && (to <= 0 || r.at < to) {
			out = append(out, r)
		}
	}
	return out
}

// latencies returns the sorted latencies of the records keep accepts (all
// when keep is nil).
func latencies(rs []record, keep func(record) bool) []time.Duration {
	out := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if keep == nil || keep(r) {
			out = append(out, r.latency)
		}
	}
	slices.Sort(out)
	return out
}

// summarize fills the common columns from the records of a window.
func summarize(rs []record) metrics {
	m := metrics{kRequests: float64(len(rs))}
	ok := 0
	for _, r := range rs {
		if r.ok() {
			ok++
		}
	}
	m[kFailed] = float64(len(rs) - ok)
	if len(rs) > 0 {
		m[kSuccess] = float64(ok) / float64(len(rs))
	}
	lat := latencies(rs, nil)
	m[kP50] = ms(stats.Percentile(lat, 0.50))
	m[kP99] = ms(stats.Percentile(lat, 0.99))
	m[kP999] = ms(stats.Percentile(lat, 0.999))
	if len(lat) > 0 {
		m[kMax] = ms(lat[len(lat)-1])
	}
	return m
}

// addLoad fills the load columns: served requests reached the replicas
// while offered were sent over dur.
func (m metrics) addLoad(served uint64, offered int, dur time.Duration) {
	m[kOffered] = float64(offered) / dur.Seconds()
	m[kLoad] = float64(served) / dur.Seconds()
	if offered > 0 {
		m[kLoadX] = float64(served) / float64(offered)
	}
}
