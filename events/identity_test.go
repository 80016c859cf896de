package events

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/internal/testidentity"
	"github.com/shoal-dev/shoal/store/storetest"
)

// An inbox behind an identity.Guard, as an SDK service with an identity
// serves it: a delivery is applied only when it comes with the
// certificate of a publisher the policy allows; one without credentials,
// one from a service the policy does not name, and one on a user's token
// alone are refused before anything is recorded.
func TestInboxPublishers(t *testing.T) {
	e := storetest.SQLite // SQLite: the rule is the same on both
	sub := newSubscriber(t, e.NewDB(t), "titles")
	ca := testidentity.CA(t, "sys")
	source := func(service string) *identity.Source { return testidentity.Source(t, ca, service) }
	self := source("search")
	tokens, err := identity.NewTokenVerifier(self, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	guard := &identity.Guard{Self: self.Credentials().ID, Tokens: tokens,
		Policy: &identity.Policy{Allow: map[string][]string{"search": {"catalog", "gateway"}}}}

	// The service's listener: mutual TLS. A second one without client
	// certificates stands for a listener a user's token alone can reach.
	mtls := testidentity.Server(t, self, guard.Wrap(sub.inbox))
	open := httptest.NewServer(guard.Wrap(sub.inbox))
	t.Cleanup(open.Close)

	issuer, err := identity.NewTokenIssuer(source("gateway"), 0)
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.Token("p0001", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	via := func(service string) http.RoundTripper {
		tr := &http.Transport{DialTLSContext: identity.NewDialer(source(service), nil).ForService("search")}
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	// Trusts the system's CA, but has no certificate of its own.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	noCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "search"}}
	t.Cleanup(noCert.CloseIdleConnections)
	for _, tt := range []struct {
		name  string
		rt    http.RoundTripper
		url   string
		token string
		want  int // 0: no answer (the handshake fails)
	}{
		{"the publisher, with its certificate", via("catalog"), "https://" + mtls.Listener.Addr().String(), "", http.StatusNoContent},
		{"a service the policy does not name", via("ratings"), "https://" + mtls.Listener.Addr().String(), "", http.StatusForbidden},
		{"no certificate at all", noCert, "https://" + mtls.Listener.Addr().String(), "", 0},
		{"anonymous, where the listener lets it in", http.DefaultTransport, open.URL, "", http.StatusUnauthorized},
		{"a user's token alone", http.DefaultTransport, open.URL, token, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, tt.url+Path, strings.NewReader(`{"id":7}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(HeaderID, newID(time.Now()))
			req.Header.Set(HeaderTopic, "titles")
			if tt.token != "" {
				req.Header.Set(identity.UserTokenHeader, tt.token)
			}
			resp, err := tt.rt.RoundTrip(req)
			switch {
			case tt.want == 0 && err == nil:
				resp.Body.Close()
				t.Fatalf("answered %s, want a failed TLS handshake", resp.Status)
			case tt.want == 0:
				return
			case err != nil:
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s: %s, want %d", resp.Status, body, tt.want)
			}
		})
	}
	if n := sub.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once: for the publisher's delivery only", n)
	}
}
