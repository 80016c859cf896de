package discoverytest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long FindLeaks lets goroutines finish. memberlist's
// Shutdown does not wait for a probe already in flight: it ends at its
// probe deadline, the awareness-scaled probe interval (at most 4 × 400 ms in
// the local profile). goleak's own retries last about 0.5 s.
const leakGrace = 5 * time.Second

// FindLeaks returns nil once no goroutine but the caller's own is running,
// or goleak's report of those still running after leakGrace: goleak.Find
// with a grace period long enough for memberlist's in-flight probes. Call
// it after the tests, from TestMain.
func FindLeaks() error {
	deadline := time.Now().Add(leakGrace)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// VerifyTestMain runs the tests, then fails the run if goroutines are still
// running leakGrace after they finished (FindLeaks). Use it as
//
//	func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := FindLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines still running %v after the tests: %v\n", leakGrace, err)
			code = 1
		}
	}
	os.Exit(code)
}
