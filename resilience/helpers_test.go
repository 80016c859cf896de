package resilience

import (
	"context"
	"strings"
	"testing"
)

// checkValidate fails the test unless err, what a config's Validate
// returned, is nil when want is "" and otherwise an error containing want.
func checkValidate(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("Validate() = %v, want nil", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("Validate() = %v, want error containing %q", err, want)
	}
}

// acquireAll takes n permits of l, one after the other, and fails the test
// if l rejects any of them.
func acquireAll(t *testing.T, l *Limiter, n int) []Permit {
	t.Helper()
	permits := make([]Permit, 0, n)
	for i := range n {
		p, ok := l.Acquire(context.Background())
		if !ok {
			t.Fatalf("request %d of %d rejected, want all %d admitted", i+1, n, n)
		}
		permits = append(permits, p)
	}
	return permits
}
