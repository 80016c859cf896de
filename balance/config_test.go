package balance_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/balance"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(c *balance.Config)
		wantErr string // substring; empty: valid
	}{
		{name: "default", mod: func(c *balance.Config) {}},
		{name: "zero value", mod: func(c *balance.Config) { *c = balance.Config{} }},
		{name: "base above default max", mod: func(c *balance.Config) { *c = balance.Config{}; c.Ejection.BaseTime = time.Minute }},
		{name: "disabled", mod: func(c *balance.Config) { c.Ejection.Disabled = true }},
		{name: "negative decay", mod: func(c *balance.Config) { c.Decay = -time.Second }, wantErr: "decay -1s"},
		{name: "negative penalty", mod: func(c *balance.Config) { c.FailurePenalty = -1 }, wantErr: "failure_penalty -1ns"},
		{name: "negative failures", mod: func(c *balance.Config) { c.Ejection.ConsecutiveFailures = -2 }, wantErr: "ejection.consecutive_failures -2"},
		{name: "negative base", mod: func(c *balance.Config) { c.Ejection.BaseTime = -time.Second }, wantErr: "ejection.base_time -1s"},
		{name: "negative max", mod: func(c *balance.Config) { c.Ejection.MaxTime = -time.Second }, wantErr: "ejection.max_time -1s"},
		{name: "max below base", mod: func(c *balance.Config) { c.Ejection.MaxTime = time.Second }, wantErr: "ejection.max_time 1s is less than ejection.base_time 2s"},
		{name: "fraction above 1", mod: func(c *balance.Config) { c.Ejection.MaxFraction = 1.5 }, wantErr: "ejection.max_fraction 1.5"},
		{name: "negative fraction", mod: func(c *balance.Config) { c.Ejection.MaxFraction = -0.1 }, wantErr: "ejection.max_fraction -0.1"},
		{name: "NaN fraction", mod: func(c *balance.Config) { c.Ejection.MaxFraction = math.NaN() }, wantErr: "ejection.max_fraction NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := balance.DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			if tt.wantErr == "" {
				balance.New(c) // must not panic
				return
			}
			defer func() {
				if recover() == nil {
					t.Error("New with an invalid Config did not panic")
				}
			}()
			balance.New(c)
		})
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[balance.Outcome]string{
		balance.Success: "success", balance.Failure: "failure",
		balance.ConnectFailure: "connect_failure", balance.TimedOut: "timed_out", balance.Outrun: "outrun",
		balance.Refused: "refused", balance.Canceled: "canceled", 9: "unknown",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, got, want)
		}
	}
}
