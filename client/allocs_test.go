package client

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestCallAllocations: a call that cannot fail over (one instance) costs
// at most 4 allocations more than its round tripper's own: the call's
// state, the request's copy and its header map (2). Nothing may end such
// an attempt early, so it runs in the call's context, and the first
// attempt's Shoal-Timeout-Ms value is formatted into the call's state.
func TestCallAllocations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // a caller's deadline, as a served request has
	defer cancel()
	allocs := func(rt http.RoundTripper) float64 {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
		return testing.AllocsPerRun(200, func() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
	base := allocs(fakeRoundTripper{})
	if added := allocs(fakeShoal(t, 1, nil)) - base; added > 4 {
		t.Errorf("a call to one instance adds %.1f allocations to the round tripper's %.1f, want ≤ 4", added, base)
	}
}
