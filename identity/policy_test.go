package identity

import (
	"strings"
	"testing"
)

func TestPolicyAllows(t *testing.T) {
	p := &Policy{Allow: map[string][]string{
		"profiles": {"gateway", "api"},
		"search":   {Any},
		Any:        {"shoal"},
		"nobody":   {},
	}}
	tests := []struct {
		caller, callee string
		want           bool
	}{
		{"gateway", "profiles", true},
		{"api", "profiles", true},
		{"catalog", "profiles", false},
		{"catalog", "search", true},
		{"shoal", "profiles", true}, // "*" callee: every service
		{"shoal", "unlisted", true},
		{"gateway", "unlisted", false}, // unknown callee: denied once a policy is set
		{"gateway", "nobody", false},
		{"", "profiles", false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.caller, tt.callee); got != tt.want {
			t.Errorf("Allows(%q, %q) = %v, want %v", tt.caller, tt.callee, got, tt.want)
		}
	}
	var none *Policy
	if !none.Allows("anyone", "anything") {
		t.Error("a nil policy denies")
	}
	if !testing.Short() {
		if n := testing.AllocsPerRun(100, func() { p.Allows("api", "profiles") }); n != 0 {
			t.Errorf("Allows allocates %v times", n)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := &Policy{Allow: map[string][]string{"profiles": {"gateway", Any}, Any: {"shoal"}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := &Policy{Allow: map[string][]string{"Profiles": {"gateway"}, "ratings": {"api", "Bad Name"}}}
	err := bad.Validate()
	for _, want := range []string{`callee service name "Profiles"`, `caller of "ratings": service name "Bad Name"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
}
