package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestFailuresCounted: Failures counts the calls whose caller saw an error
// or a 5xx, a final 500 included, and its deadline passing; not a 404, nor
// a call its caller canceled, which did not fail but was abandoned (the
// dashboard's error ratio of a call between services is Failures/Calls).
func TestFailuresCounted(t *testing.T) {
	arrived := make(chan struct{}, 1)
	h := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/404":
			w.WriteHeader(http.StatusNotFound)
		case "/hang":
			arrived <- struct{}{}
			<-r.Context().Done()
		}
	}
	f := newFleet(t, h)
	tr := newTransport(t, f, Config{})
	failures := func() uint64 {
		if deps := tr.Dependencies(); len(deps) > 0 {
			return deps[0].Failures
		}
		return 0 // no call made yet
	}
	call := func(ctx context.Context, path string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc"+path, nil)
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
	}

	// counts calls path with a context from ctx and returns the failures
	// it added.
	counts := func(ctx context.Context, path string) uint64 {
		before := failures()
		call(ctx, path)
		return failures() - before
	}
	if n := counts(context.Background(), "/500"); n != 1 {
		t.Errorf("a 500: %d failures, want 1", n)
	}
	if n := counts(context.Background(), "/404"); n != 0 {
		t.Errorf("a 404: %d failures, want 0", n)
	}
	// Canceled once the request is in, without a cause and with one (the
	// gateway's engine, errgroup): neither is a failure.
	for _, cause := range []error{nil, errors.New("the client hung up")} {
		ctx, cancel := context.WithCancelCause(context.Background())
		go func() {
			<-arrived
			cancel(cause)
		}()
		if n := counts(ctx, "/hang"); n != 0 {
			t.Errorf("a call its caller canceled (cause %v): %d failures, want 0", cause, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if n := counts(ctx, "/hang"); n != 1 {
		t.Errorf("a call past its caller's deadline: %d failures, want 1", n)
	}
	if n := tr.Dependencies()[0].Calls; n != 5 {
		t.Errorf("%d calls, want 5", n)
	}
}
