package deploy

import (
	"os"
	"testing"

	"github.com/shoal-dev/shoal/discovery/discoverytest"
)

// TestMain runs the tests, or, when the test binary is started as the
// program an agent runs, that program (fakeProgram).
func TestMain(m *testing.M) {
	if host := os.Getenv(envFakeProgram); host != "" {
		os.Exit(fakeProgram(host))
	}
	discoverytest.VerifyTestMain(m)
}
