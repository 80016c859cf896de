package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	flix := newCA(t, "flix")
	b := bundleOf(t, flix)
	ratings := NewSource(credsOf(t, flix, "ratings", b))
	gwSrc := NewSource(credsOf(t, flix, "gateway", b))
	verifier, err := NewTokenVerifier(ratings, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := NewTokenIssuer(gwSrc, 0)
	if err != nil {
		t.Fatal(err)
	}
	token, err := issuer.Token("p0001", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	policy := &Policy{Allow: map[string][]string{"ratings": {"gateway", "recommendations"}}}

	// tlsFrom is the connection state net/http sets after a verified
	// mutual-TLS handshake with a caller holding c.
	tlsFrom := func(c *Credentials) *tls.ConnectionState {
		leaf := c.Cert.Leaf
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, flix.Cert}}}
	}
	other := newCA(t, "other")
	foreign := credsOf(t, other, "gateway", bundleOf(t, other))

	tests := []struct {
		name       string
		guard      Guard
		tls        *tls.ConnectionState
		tokens     []string
		wantStatus int
		wantCaller string
		wantUser   string
	}{
		{"allowed caller", Guard{Policy: policy}, tlsFrom(credsOf(t, flix, "recommendations", b)), nil, 200, "spiffe://flix/recommendations", ""},
		{"caller not in policy", Guard{Policy: policy}, tlsFrom(credsOf(t, flix, "catalog", b)), nil, 403, "", ""},
		{"no policy: any service of the system", Guard{}, tlsFrom(credsOf(t, flix, "catalog", b)), nil, 200, "spiffe://flix/catalog", ""},
		{"caller of another system", Guard{}, tlsFrom(foreign), nil, 403, "", ""},
		{"caller with a user", Guard{Policy: policy, Tokens: verifier}, tlsFrom(credsOf(t, flix, "recommendations", b)), []string{token}, 200, "spiffe://flix/recommendations", "p0001"},
		{"caller with a bad token", Guard{Policy: policy, Tokens: verifier}, tlsFrom(credsOf(t, flix, "recommendations", b)), []string{token + "x"}, 401, "", ""},
		{"caller with two tokens", Guard{Policy: policy, Tokens: verifier}, tlsFrom(credsOf(t, flix, "recommendations", b)), []string{token, token}, 401, "", ""},
		{"token where none is accepted", Guard{Policy: policy}, tlsFrom(credsOf(t, flix, "recommendations", b)), []string{token}, 401, "", ""},
		{"no certificate, valid token", Guard{Policy: policy, Tokens: verifier}, nil, []string{token}, 200, "", "p0001"},
		{"no certificate, token of an issuer the policy denies", Guard{Policy: &Policy{Allow: map[string][]string{"ratings": {"api"}}}, Tokens: verifier}, nil, []string{token}, 403, "", ""},
		{"no certificate, no token", Guard{Policy: policy, Tokens: verifier}, nil, nil, 401, "", ""},
		{"no certificate, no token, no policy", Guard{}, nil, nil, 401, "", ""},
		{"TLS without a verified chain", Guard{}, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{credsOf(t, flix, "api", b).Cert.Leaf}}, nil, 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.guard
			g.Self = ID{"flix", "ratings"}
			ran := false
			h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ran = true
				caller, _ := CallerFrom(r.Context())
				user, _ := UserFrom(r.Context())
				if caller.IsZero() {
					w.Header().Set("Caller", "")
				} else {
					w.Header().Set("Caller", caller.String())
				}
				w.Header().Set("User", user.Subject)
			}))
			r := httptest.NewRequest(http.MethodGet, "/ratings/p0001", nil)
			r.TLS = tt.tls
			for _, tok := range tt.tokens {
				r.Header.Add(UserTokenHeader, tok)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != 200 {
				if ran {
					t.Fatal("the handler ran")
				}
				var body struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code == "" {
					t.Fatalf("refusal body %q: %v", w.Body, err)
				}
				if strings.Contains(body.Error.Message, token) {
					t.Error("the refusal repeats the token")
				}
				return
			}
			if got := w.Header().Get("Caller"); got != tt.wantCaller {
				t.Errorf("CallerFrom = %q, want %q", got, tt.wantCaller)
			}
			if got := w.Header().Get("User"); got != tt.wantUser {
				t.Errorf("UserFrom = %q, want %q", got, tt.wantUser)
			}
		})
	}
}

func TestForwardUser(t *testing.T) {
	flix := newCA(t, "flix")
	b := bundleOf(t, flix)
	issuer, _ := NewTokenIssuer(NewSource(credsOf(t, flix, "gateway", b)), 0)
	verifier, _ := NewTokenVerifier(NewSource(credsOf(t, flix, "api", b)), "gateway")
	token, err := issuer.Token("p0001", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	g := &Guard{Self: ID{"flix", "api"}, Tokens: verifier}
	var out http.Header
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out = http.Header{}
		ForwardUser(r.Context(), out)
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(UserTokenHeader, token)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got := out.Get(UserTokenHeader); got != token {
		t.Fatalf("forwarded %q, want the incoming token", got)
	}
	none := http.Header{}
	ForwardUser(t.Context(), none)
	if len(none) != 0 {
		t.Errorf("a request for no user forwarded %v", none)
	}
}
