package client

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/internal/testfault"
	"github.com/shoal-dev/shoal/resilience"
)

// faultContext returns a context carrying the verified faults of spec, as
// the SDK's server of service "api" leaves them for its handler.
func faultContext(t *testing.T, spec string) (context.Context, string) {
	t.Helper()
	s := testfault.NewSigner(t)
	tok := testfault.Token(t, s, spec)
	v, err := chaos.NewVerifier(s.PublicKey(), "api")
	if err != nil {
		t.Fatal(err)
	}
	set, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return chaos.NewContext(context.Background(), set), tok
}

// The call carries the token on, and applies the link's faults to each
// attempt: a reset is never sent, so it fails over to every instance.
func TestCallCarriesFaults(t *testing.T) {
	var got atomic.Value
	record := func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get(chaos.Header)) }
	f := newFleet(t, record, record, record)
	tr := newTransport(t, f, Config{Hedge: resilience.HedgeConfig{Disabled: true}})

	ctx, tok := faultContext(t, "api>other:reset")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc/x", nil)
	roundTrip(t, tr, req)
	if got.Load() != tok {
		t.Errorf("the callee got Shoal-Fault %q, want the call's token", got.Load())
	}

	ctx, _ = faultContext(t, "api>svc:reset")
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://svc/x", nil)
	before := f.hits[0].Load() + f.hits[1].Load() + f.hits[2].Load()
	_, err := tr.RoundTrip(req)
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Attempts) != 3 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a reset link: %v, want 3 attempts (a POST never sent fails over), each reset", err)
	}
	if after := f.hits[0].Load() + f.hits[1].Load() + f.hits[2].Load(); after != before {
		t.Errorf("%d requests reached instances through a reset link", after-before)
	}

	// Without faults, nothing is added.
	got.Store("")
	if _, _, err = get(t, tr.Client(), "http://svc/x"); err != nil || got.Load() != "" {
		t.Errorf("a call without faults sent Shoal-Fault %q (%v)", got.Load(), err)
	}
}
