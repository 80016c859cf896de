package shoal

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/identity"
)

// testSystem is a system's CA in a temporary folder, issuing instances
// their files as shoal up does.
type testSystem struct {
	t    *testing.T
	auth *identity.Authority
}

func newTestSystem(t *testing.T) *testSystem {
	t.Helper()
	a, err := identity.OpenAuthority(filepath.Join(t.TempDir(), "identity"), "sys")
	if err != nil {
		t.Fatal(err)
	}
	return &testSystem{t: t, auth: a}
}

func (s *testSystem) files(service string) identity.Files {
	s.t.Helper()
	f, err := s.auth.IssueFiles(service, filepath.Join(s.t.TempDir(), service), 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return f
}

// source is a file-less identity of service, for a test's own client.
func (s *testSystem) source(service string) *identity.Source {
	s.t.Helper()
	c, err := s.auth.Credentials(service, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	return identity.NewSource(c)
}

// whoHandler answers who called and for whom, as the Guard verified them.
var whoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	caller, _ := identity.CallerFrom(r.Context())
	user, _ := identity.UserFrom(r.Context())
	WriteJSON(w, http.StatusOK, map[string]string{"caller": caller.String(), "user": user.Subject})
})

type who struct{ Caller, User string }

func decodeWho(t *testing.T, resp *http.Response) who {
	t.Helper()
	defer resp.Body.Close()
	var w who
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return w
}

// A system of three services with identities and a policy: calls between
// them are mutual TLS, the callee knows its caller and the user the call
// is for, the policy is enforced, and nothing without a certificate of the
// system gets an answer.
func TestIdentityBetweenServices(t *testing.T) {
	verifyNoLeaks(t)
	sys := newTestSystem(t)
	policy := &identity.Policy{Allow: map[string][]string{"alpha": {"beta", "gateway"}, "beta": {"gateway"}}}
	alpha, _, _ := start(t, Config{Name: "alpha", Identity: Identity{Files: sys.files("alpha"), Policy: policy}}, whoHandler)
	seeds := []string{alpha.member.Load().GossipAddr()}
	// beta calls alpha on the user's behalf.
	var beta *Service
	beta, _, _ = start(t, Config{Name: "beta", Seeds: seeds, Identity: Identity{Files: sys.files("beta"), Policy: policy}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://alpha/who", nil)
			resp, err := beta.Client().Do(req)
			if err != nil {
				WriteError(w, http.StatusBadGateway, "alpha", err.Error())
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}))
	// gamma may call nobody.
	gamma, _, _ := start(t, Config{Name: "gamma", Seeds: seeds, Identity: Identity{Files: sys.files("gamma"), Policy: policy}}, whoHandler)
	for _, s := range []*Service{alpha, beta, gamma} {
		if s.scheme() != "https" || s.Info().Identity != "spiffe://sys/"+s.cfg.Name {
			t.Fatalf("%s: scheme %s, identity %q", s.cfg.Name, s.scheme(), s.Info().Identity)
		}
	}
	waitUntil(t, "beta and gamma to see alpha", func() bool {
		return len(beta.Instances("alpha")) == 1 && len(gamma.Instances("alpha")) == 1
	})

	// The test is the gateway: it mints the user's token and calls beta.
	gw := sys.source("gateway")
	issuer, err := identity.NewTokenIssuer(gw, 0)
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.Token("p0001", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	dialer := identity.NewDialer(gw, nil)
	toBeta := &http.Transport{DialTLSContext: dialer.ForService("beta")}
	t.Cleanup(toBeta.CloseIdleConnections)
	req, _ := http.NewRequest("GET", "https://"+beta.Addr()+"/via", nil)
	req.Header.Set(identity.UserTokenHeader, token)
	resp, err := toBeta.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := decodeWho(t, resp), (who{Caller: "spiffe://sys/beta", User: "p0001"}); got != want {
		t.Errorf("alpha, called by beta for the gateway's user, saw %+v, want %+v", got, want)
	}

	// A forged token is refused, not taken for "no user".
	req.Header.Set(identity.UserTokenHeader, token[:len(token)-4]+"AAAA")
	if resp, err = toBeta.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged user token: %d, want 401", resp.StatusCode)
	}

	// The policy: gamma may not call alpha.
	resp, err = gamma.Client().Get("http://alpha/who")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("gamma → alpha: %d, want 403 (the policy names beta and gateway only)", resp.StatusCode)
	}

	// Without a certificate of the system: plain HTTP, TLS without a
	// client certificate, a certificate of another system.
	resp, _ = get(t, http.DefaultClient, "http://"+alpha.Addr()+"/who")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to alpha: %d, want 400 (the TLS listener's answer to HTTP)", resp.StatusCode)
	}
	pool := x509.NewCertPool()
	for _, ca := range alpha.Identity().Credentials().Bundle.CAs() {
		pool.AddCert(ca)
	}
	noCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "alpha"}}
	t.Cleanup(noCert.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: noCert}).Get("https://" + alpha.Addr() + "/who"); err == nil {
		resp.Body.Close()
		t.Errorf("TLS without a client certificate answered %s, want a failed handshake", resp.Status)
	}
	other := newTestSystem(t)
	foreign := &http.Transport{DialTLSContext: identity.NewDialer(other.source("beta"), nil).ForService("alpha")}
	t.Cleanup(foreign.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: foreign}).Get("https://" + alpha.Addr() + "/who"); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate of another CA answered %s, want a failed handshake", resp.Status)
	}
}

// The edge serves the outside over plain HTTP (or its own TLS) without a
// Guard, and calls services with its identity.
func TestIdentityEdge(t *testing.T) {
	verifyNoLeaks(t)
	sys := newTestSystem(t)
	alpha, _, _ := start(t, Config{Name: "alpha", Identity: Identity{Files: sys.files("alpha"),
		Policy: &identity.Policy{Allow: map[string][]string{"alpha": {"gateway"}}}}}, whoHandler)
	var gw *Service
	gw, _, _ = start(t, Config{Name: "gateway", Seeds: []string{alpha.member.Load().GossipAddr()},
		Identity: Identity{Files: sys.files("gateway"), Edge: true}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := gw.Client().Get("http://alpha/who")
			if err != nil {
				WriteError(w, http.StatusBadGateway, "alpha", err.Error())
				return
			}
			defer resp.Body.Close()
			io.Copy(w, resp.Body)
		}))
	if gw.scheme() != "http" || gw.Identity() == nil {
		t.Fatalf("edge: scheme %s, identity %v; want http and an identity for its calls", gw.scheme(), gw.Identity())
	}
	waitUntil(t, "the gateway to see alpha", func() bool { return len(gw.Instances("alpha")) == 1 })
	resp, err := http.Get("http://" + gw.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeWho(t, resp); got.Caller != "spiffe://sys/gateway" {
		t.Errorf("alpha saw caller %q, want the gateway's identity", got.Caller)
	}
}

// Configuration mistakes are refused before anything starts.
func TestIdentityConfig(t *testing.T) {
	sys := newTestSystem(t)
	alphaFiles := sys.files("alpha")
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"another service's certificate", Config{Name: "beta", Identity: Identity{Files: alphaFiles}}, `for spiffe://sys/alpha, not for service "beta"`},
		{"edge TLS without edge", Config{Name: "alpha", TLSCertFile: "x", TLSKeyFile: "y", Identity: Identity{Files: alphaFiles}}, "tls_cert_file is for the edge"},
		{"bad policy", Config{Name: "alpha", Identity: Identity{Policy: &identity.Policy{Allow: map[string][]string{"alpha": {"Not A Name"}}}}}, "caller of \"alpha\""},
		{"bad issuer", Config{Name: "alpha", Identity: Identity{TokenIssuers: []string{"-x"}}}, "token_issuers"},
		{"missing files", Config{Name: "alpha", Identity: Identity{Files: identity.Files{Cert: "/nonexistent/c", Key: "/nonexistent/k", Bundle: "/nonexistent/b"}}}, "nonexistent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, http.NotFoundHandler())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestIdentityFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want Identity
		err  string
	}{
		{name: "none", env: map[string]string{}},
		{name: "all", env: map[string]string{
			identity.EnvCert: "c", identity.EnvKey: "k", identity.EnvBundle: "b",
			EnvPolicy:       `{"allow": {"ratings": ["api", "gateway"], "*": ["shoal"]}}`,
			EnvTokenIssuers: "gateway, edge", EnvPlaintext: "trailers",
		}, want: Identity{
			Files:        identity.Files{Cert: "c", Key: "k", Bundle: "b"},
			Policy:       &identity.Policy{Allow: map[string][]string{"ratings": {"api", "gateway"}, "*": {"shoal"}}},
			TokenIssuers: []string{"gateway", "edge"}, Plaintext: []string{"trailers"},
		}},
		{name: "some files", env: map[string]string{identity.EnvCert: "c"}, err: identity.EnvKey},
		{name: "policy not JSON", env: map[string]string{EnvPolicy: "ratings: [api]"}, err: EnvPolicy},
		{name: "policy with a typo", env: map[string]string{EnvPolicy: `{"alow": {}}`}, err: "alow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := c.FromEnv(func(k string) string { return tt.env[k] })
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("FromEnv: %v, want an error naming %s", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				got, _ := json.Marshal(c.Identity)
				want, _ := json.Marshal(tt.want)
				if string(got) != string(want) {
					t.Errorf("Identity = %s, want %s", got, want)
				}
			}
		})
	}
}
