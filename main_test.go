package shoal

import (
	"testing"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// Every test must leave no goroutine behind. Gossip members run here, so
// the check waits out memberlist's probes still in flight at shutdown (see
// discoverytest.VerifyTestMain).
func TestMain(m *testing.M) { discoverytest.VerifyTestMain(m) }
