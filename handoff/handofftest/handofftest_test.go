package handofftest_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/handoff/handofftest"
)

func TestRefused(t *testing.T) {
	addr := handofftest.Refused(t)
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}
