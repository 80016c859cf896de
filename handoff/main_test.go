package handoff

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// envChild makes the test binary act as a child given a socket (see
// TestPassToChild).
const envChild = "HANDOFF_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

// child takes the inherited socket, answers one connection with its
// address and whether EnvFD is still set, and exits.
func child() int {
	ln, err := Listener()
	if err != nil || ln == nil {
		fmt.Fprintln(os.Stderr, "Listener:", ln, err)
		return 1
	}
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Accept:", err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %q", ln.Addr(), os.Getenv(EnvFD))
	return 0
}
