// Package cpumeter reports, next to a benchmark's wall-clock ns/op, the CPU
// time the whole process (both ends of a loopback connection, the GC) spent
// per operation: on a machine shared with other builds, wall time mostly
// measures waiting.
package cpumeter

import (
	"syscall"
	"testing"
	"time"
)

// Meter is the process's CPU time when it started.
type Meter struct{ start time.Duration }

// Start starts a Meter.
func Start() Meter { return Meter{processCPU()} }

// Report adds to b's results the metric cpu-ns/op: the process's CPU time
// since Start, divided by b.N.
func (m Meter) Report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
