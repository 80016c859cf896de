package client

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/resilience"
)

// A CallPolicy caps the attempts of one call below the service's policy,
// and leaves other calls alone.
func TestWithPolicyCapsAttempts(t *testing.T) {
	f := newFleet(t, status(503), status(503), status(503))
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{Disabled: true}})
	hits := func() int64 {
		var n int64
		for i := range f.hits {
			n += f.hits[i].Load()
		}
		return n
	}
	tests := []struct {
		name   string
		policy *CallPolicy
		want   int64
	}{
		{"service policy", nil, 3},
		{"one attempt", &CallPolicy{MaxAttempts: 1}, 1},
		{"two attempts", &CallPolicy{MaxAttempts: 2}, 2},
		{"zero keeps the service's", &CallPolicy{}, 3},
		{"capped at 8", &CallPolicy{MaxAttempts: 50}, 3}, // three instances to try
	}
	for _, tt := range tests {
		ctx := context.Background()
		if tt.policy != nil {
			ctx = WithPolicy(ctx, *tt.policy)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		before := hits()
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if got := hits() - before; got != tt.want {
			t.Errorf("%s: %d attempts, want %d", tt.name, got, tt.want)
		}
	}
}

// NoHedge turns hedging off for the call: a slow first attempt gets no
// second one.
func TestWithPolicyNoHedge(t *testing.T) {
	var slow atomic.Bool
	h := func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		ok(w, r)
	}
	f := newFleet(t, h, h)
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{
		Percentile: 0.5, MinSamples: 5, MinDelay: 5 * time.Millisecond, MaxExtra: 1, // hedge whenever slow
	}})
	for range 20 { // latency samples for the hedge delay
		if _, _, err := get(t, tr.Client(), "http://svc/x"); err != nil {
			t.Fatal(err)
		}
	}
	slow.Store(true)
	call := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		roundTrip(t, tr, req)
	}
	before := tr.Dependencies()[0].Hedges // a warm-up call may have been hedged
	call(WithPolicy(context.Background(), CallPolicy{NoHedge: true}))
	if n := tr.Dependencies()[0].Hedges - before; n != 0 {
		t.Fatalf("%d hedges with NoHedge", n)
	}
	call(context.Background())
	if n := tr.Dependencies()[0].Hedges - before; n != 1 {
		t.Fatalf("%d hedges without the policy, want 1 (the test does not exercise hedging)", n)
	}
}
