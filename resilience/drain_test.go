package resilience

import (
	"testing"
	"time"
)

// flow is one window's arrivals and completions.
type flow struct{ arrivals, completions int }

// feed closes a window of overloadWindow on d for each flow, with the
// requests in the system grown by its arrivals less its completions, no
// slot idle, and the limiter's throughput as given; it reports whether d
// became overloaded.
func feed(d *drain, throughput float64, flows ...flow) bool {
	now, system := d.epoch, 0
	d.tick(now, 0, 0, 0, throughput) // the first window starts here
	for _, f := range flows {
		now = now.Add(overloadWindow)
		for range f.arrivals {
			d.arrived()
		}
		for range f.completions {
			d.completed()
		}
		d.bind()
		system += f.arrivals - f.completions
		d.tick(now, system, 0, 0, throughput)
	}
	return d.overloaded()
}

// Before any drain rate is measured (an instance rarely saturated never
// measures one), the completions are checked against the limiter's
// throughput: a stall, in which completions fall to a tenth while callers
// keep coming, is no open-loop excess; the same growth with completions at
// that throughput is.
func TestDrainStallWithoutDrainRate(t *testing.T) {
	const throughput = 200 // per second: 10 per window
	stall := flow{arrivals: 10, completions: 1}
	if feed(&drain{epoch: time.Now()}, throughput, stall, stall, stall, stall) {
		t.Error("a stall (1 completion per window against 10 expected) was taken for overload")
	}
	excess := flow{arrivals: 20, completions: 10}
	if !feed(&drain{epoch: time.Now()}, throughput, excess, excess, excess, excess) {
		t.Error("an excess at 2× with completions at the throughput was not taken for overload")
	}
}

// An excess grows the queue in every window; a wave of callers that
// arrive together grows it enough over three windows, but not in the
// last (playback's queue under bench/startup at C = 128: 8, 2, 1).
func TestDrainGrowthMustLast(t *testing.T) {
	const throughput = 120 // per second: 6 per window
	if feed(&drain{epoch: time.Now()}, throughput, flow{18, 10}, flow{3, 1}, flow{7, 6}) {
		t.Error("a wave that grew the queue by 8, 2 and 1 was taken for overload")
	}
	if !feed(&drain{epoch: time.Now()}, throughput, flow{10, 6}, flow{10, 6}, flow{10, 6}) {
		t.Error("an excess that grew the queue by 4 in each window was not taken for overload")
	}
}

// A stall that begins in the newest window grows the queue with
// completions short of the rate; the windows before, at the full rate,
// do not make it an excess (playback: growth of 2, 0 and 11, with 3
// completions in the last window against 5.6 expected).
func TestDrainStallInNewestWindow(t *testing.T) {
	const throughput = 120 // per second: 6 per window
	if feed(&drain{epoch: time.Now()}, throughput, flow{8, 6}, flow{8, 6}, flow{14, 2}) {
		t.Error("a stall begun in the newest window was taken for overload")
	}
	if !feed(&drain{epoch: time.Now()}, throughput, flow{8, 6}, flow{8, 6}, flow{14, 6}) {
		t.Error("growth at the full rate in every window was not taken for overload")
	}
}
