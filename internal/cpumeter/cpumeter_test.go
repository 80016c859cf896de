package cpumeter

import (
	"testing"
	"time"
)

// The process's CPU time grows with work done and never shrinks.
func TestProcessCPU(t *testing.T) {
	before := processCPU()
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
	}
	if after := processCPU(); after <= before {
		t.Errorf("CPU time %v after 20ms of spinning, %v before", after, before)
	}
}

func BenchmarkReport(b *testing.B) {
	m := Start()
	for b.Loop() {
		_ = processCPU()
	}
	m.Report(b)
}
