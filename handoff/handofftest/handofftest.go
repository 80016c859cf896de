// Package handofftest gives tests loopback addresses that no other socket
// can take while the test runs: the replacement for a listener closed to
// learn a free port, whose port the kernel may hand to the very next socket
// that asks for one (another test's server, say).
package handofftest

import (
	"testing"

	"github.com/shoal-dev/shoal/handoff"
)

// Port reserves a loopback port until the test ends (handoff.Reserve): for
// a program the test starts, given the socket (Port.Pass) or binding the
// address itself with SO_REUSEADDR.
func Port(t testing.TB) *handoff.Port {
	t.Helper()
	p, err := handoff.Reserve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Refused returns a loopback address that refuses connections until the
// test ends, as a crashed instance's would: a dial fails with
// ECONNREFUSED, which client classifies as never sent.
func Refused(t testing.TB) string {
	t.Helper()
	return Port(t).Addr().String()
}
