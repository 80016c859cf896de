package identity

import (
	"testing"

	"go.uber.org/goleak"
)

// Tests start TLS servers, clients and Source.Run loops: none may outlive
// its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
