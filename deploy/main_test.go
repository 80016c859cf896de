package deploy

import (
	"os"
	"testing"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// TestMain runs the tests, or, when the test binary is started as a
// stand-in for another program, that program: the agent's program
// (fakeProgram) or kubectl for secrets.sh (fakeKubectl).
func TestMain(m *testing.M) {
	if host := os.Getenv(envFakeProgram); host != "" {
		os.Exit(fakeProgram(host))
	}
	if state := os.Getenv(envFakeKubectl); state != "" {
		os.Exit(fakeKubectl(state, os.Args[1:]))
	}
	discoverytest.VerifyTestMain(m)
}
