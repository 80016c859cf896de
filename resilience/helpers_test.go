package resilience

import (
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
