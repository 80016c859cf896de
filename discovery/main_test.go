package discovery_test

import (
	"testing"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// Every test in the package, memberlist clusters included, must leave no
// goroutine behind: Run waits for its own goroutines and memberlist's
// Shutdown for its listeners. The grace period covers memberlist probes
// still in flight at Shutdown; see VerifyTestMain.
func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }
