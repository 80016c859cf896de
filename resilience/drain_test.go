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

// The entry test, window by window, against the three ways a closed loop
// got into overload at playback under bench/startup at C = 128, each with
// the open-loop excess it must still catch. Before any drain rate is
// measured (an instance rarely saturated never measures one), the
// completions are checked against the limiter's throughput.
func TestDrainEntry(t *testing.T) {
	for _, c := range []struct {
		name       string
		throughput float64 // per second; × overloadWindow per window
		flows      []flow
		want       bool
	}{
		// Completions fall to a tenth while callers keep coming.
		{"stall, no drain rate", 200, []flow{{10, 1}, {10, 1}, {10, 1}, {10, 1}}, false},
		{"excess at 2×, no drain rate", 200, []flow{{20, 10}, {20, 10}, {20, 10}, {20, 10}}, true},
		// A wave of callers arriving together: growth of 8, 2 and 1 is
		// enough over three windows, but it has stopped.
		{"wave", 120, []flow{{18, 10}, {3, 1}, {7, 6}}, false},
		{"growth in every window", 120, []flow{{10, 6}, {10, 6}, {10, 6}}, true},
		// A stall begun in the newest window (3 completions against 6);
		// the two windows before, above the rate, make the sum look full.
		{"stall in the newest window", 120, []flow{{8, 7}, {8, 7}, {14, 3}}, false},
		{"the newest window at the full rate", 120, []flow{{8, 7}, {8, 7}, {14, 6}}, true},
	} {
		if got := feed(&drain{epoch: time.Now()}, c.throughput, c.flows...); got != c.want {
			t.Errorf("%s %v: overloaded %v, want %v", c.name, c.flows, got, c.want)
		}
	}
}
