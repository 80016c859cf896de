// Package testidentity gives tests the workload identities of a system
// (package identity): a service's credentials from a test CA, and a
// server that requires mutual TLS.
package testidentity

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal/identity"
)

// CA returns a new certificate authority of system, valid for the default
// lifetime. It fails tb if it cannot make one.
func CA(tb testing.TB, system string) *identity.CA {
	tb.Helper()
	ca, err := identity.NewCA(system, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return ca
}

// Source returns the credentials of service, issued by ca for its default
// lifetime, that trust ca's system. It fails tb if any step does.
func Source(tb testing.TB, ca *identity.CA, service string) *identity.Source {
	tb.Helper()
	c, err := ca.Issue(service, 0)
	if err != nil {
		tb.Fatal(err)
	}
	bundle, err := identity.NewBundle(ca.Cert)
	if err != nil {
		tb.Fatal(err)
	}
	creds, err := identity.NewCredentials(c.TLS(), bundle)
	if err != nil {
		tb.Fatal(err)
	}
	return identity.NewSource(creds)
}

// Server serves h over mutual TLS, as src's service, until the test ends.
// The handshakes it refuses are not logged: in these tests they are the
// point.
func Server(tb testing.TB, src *identity.Source, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = identity.ServerConfig(src)
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}
