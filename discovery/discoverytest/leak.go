package discoverytest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long VerifyTestMain lets goroutines finish after the
// tests. memberlist's Shutdown does not wait for a probe already in flight:
// it ends at its probe deadline, the awareness-scaled probe interval (at most
// 4 × 400 ms in the local profile). goleak's own retries last about 0.5 s.
const leakGrace = 5 * time.Second

// VerifyTestMain runs the tests, then fails the run if goroutines are still
// running leakGrace after they finished: goleak.VerifyTestMain with a grace
// period long enough for memberlist's in-flight probes. Use it as
//
//	func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(leakGrace)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines still running %v after the tests: %v\n", leakGrace, err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	os.Exit(code)
}
