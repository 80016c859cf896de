package client

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

// mtlsServer serves h with mutual TLS as service, with credentials of
// ca's system.
func mtlsServer(t testing.TB, ca *identity.CA, service string, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the point
	srv.TLS = identity.ServerConfig(identity.NewSource(credentials(t, ca, service)))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func credentials(t testing.TB, ca *identity.CA, service string) *identity.Credentials {
	t.Helper()
	c, err := ca.Issue(service, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.NewBundle(ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := identity.NewCredentials(c.TLS(), b)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// With TLS, every service is called over mutual TLS through a transport of
// its own, and an instance that cannot prove it is the service asked for
// gets no request: a record for beta pointing at alpha's address fails in
// the handshake. Services named Plaintext are called over plain HTTP.
func TestTLSPerService(t *testing.T) {
	ca, err := identity.NewCA("sys", 0)
	if err != nil {
		t.Fatal(err)
	}
	var alphaGot, plainGot atomic.Int32
	alpha := mtlsServer(t, ca, "alpha", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}), Config{TLS: identity.NewDialer(identity.NewSource(credentials(t, ca, "caller")), nil), Plaintext: []string{"plain"}, MaxAttempts: 1})
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
	_, err = c.Get("http://beta/x")
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Attempts) != 1 {
		t.Fatalf("GET http://beta/x at alpha's address: %v, want a failed attempt", err)
	}
	if a, p := alphaGot.Load(), plainGot.Load(); a != 1 || p != 1 {
		t.Errorf("alpha served %d requests, plain %d; want 1 each (beta's never sent)", a, p)
	}
}
