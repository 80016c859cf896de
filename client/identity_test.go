package client

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/testidentity"
)

// With TLS, every service is called over mutual TLS through a transport of
// its own, and an instance that cannot prove it is the service asked for
// gets no request: a record for beta pointing at alpha's address fails in
// the handshake. Services named Plaintext are called over plain HTTP.
func TestTLSPerService(t *testing.T) {
	ca := testidentity.CA(t, "sys")
	var alphaGot, plainGot atomic.Int32
	alpha := testidentity.Server(t, testidentity.Source(t, ca, "alpha"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		alphaGot.Add(1)
		id, err := identity.PeerFromRequest(r)
		if err != nil {
			t.Errorf("alpha: %v", err)
		}
		io.WriteString(w, id.String())
	}))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainGot.Add(1)
		io.WriteString(w, "plain")
	}))
	t.Cleanup(plain.Close)
	addrs := map[string]string{"alpha": alpha.Listener.Addr().String(), "beta": alpha.Listener.Addr().String(), "plain": plain.Listener.Addr().String()}
	tr := newTransport(t, resolverFunc(func(s string) []discovery.Instance {
		return []discovery.Instance{{ID: s + "-0", Service: s, Addr: addrs[s], State: discovery.StateServing}}
	}), Config{TLS: identity.NewDialer(testidentity.Source(t, ca, "caller"), nil), Plaintext: []string{"plain"}, MaxAttempts: 1})
	c := tr.Client()

	for _, tt := range []struct {
		url, want string
	}{
		{"http://alpha/x", "spiffe://sys/caller"},
		{"http://plain/x", "plain"},
	} {
		resp, err := c.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.want {
			t.Errorf("GET %s = %q, want %q", tt.url, body, tt.want)
		}
	}
	// The same connection pool must not carry beta's request to alpha.
	_, err := c.Get("http://beta/x")
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Attempts) != 1 {
		t.Fatalf("GET http://beta/x at alpha's address: %v, want a failed attempt", err)
	}
	if a, p := alphaGot.Load(), plainGot.Load(); a != 1 || p != 1 {
		t.Errorf("alpha served %d requests, plain %d; want 1 each (beta's never sent)", a, p)
	}
}
