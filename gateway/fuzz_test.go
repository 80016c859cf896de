package gateway

// Fuzz targets of the edge (issue 13): the whole of ServeHTTP against its
// invariant, and the parsers that read what outsiders send (tokens, key
// sets, origins, trace context). go test runs their seeds; go test -fuzz
// explores.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway/internal/h1"
)

// sent is what a fuzzed request made the gateway send to a service.
type sent struct {
	service string
	uri     string // the request-target the service reads
	header  http.Header
}

// recordingTransport answers every call 200 and keeps what was sent.
type recordingTransport struct {
	mu   sync.Mutex
	sent []sent
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	rt.mu.Lock()
	rt.sent = append(rt.sent, sent{service: r.URL.Host, uri: r.URL.RequestURI(), header: r.Header.Clone()})
	rt.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (rt *recordingTransport) take() []sent {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s := rt.sent
	rt.sent = nil
	return s
}

// FuzzServeHTTP: whatever request reaches the gateway, by either server's
// reading of its bytes, no service receives a request for one of its admin
// paths or its events inbox (however the service decodes the target), the
// gateway's own /metrics and /infoz are never forwarded, a service that a
// route guards with an API key is reached only with that key, shoal's own
// services are never reached, and no credential or identity the caller
// sent is passed on.
func FuzzServeHTTP(f *testing.F) {
	const key = "s3cret"
	cat := discovery.NewCatalog()
	for _, svc := range []string{"web", "vault", "metrics", "infoz", "healthz", "_events", "shoal-supervisor"} {
		cat.Upsert(discovery.Instance{ID: svc + "-1", Service: svc, Addr: "127.0.0.1:1", State: discovery.StateServing})
	}
	rt := &recordingTransport{}
	g := New(cat, rt)
	g.Logger = slog.New(slog.DiscardHandler)
	if err := g.SetConfig(&Config{
		Auth: AuthConfig{APIKeys: []APIKey{{Name: "ops", SHA256: sha(key)}}},
		Routes: []Route{
			{Path: "/private/", Service: "vault", Strip: true, Auth: AuthAPIKey},
			{Path: "/", Host: "admin.example", Service: "vault", Auth: AuthAPIKey},
			{Path: "/api/", Service: "web", Strip: true},
			{Path: "/r/", Service: "web", Rewrite: "/x/"},
			{Path: "/root/", Service: "web", Rewrite: "/"},
		},
	}, f.TempDir()); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct{ method, target, host, key string }{
		{"GET", "/metrics", "gw", ""},
		{"GET", "/web/metrics", "gw", ""},
		{"GET", "/web/%2e%2e/metrics", "gw", ""},
		{"GET", "/web/..%2fmetrics", "gw", ""},
		{"GET", "/api/%2fhealthz", "gw", ""},
		{"GET", "/root/metrics", "gw", ""},
		{"GET", "/root/_EVENTS/x", "gw", ""},
		{"POST", "/web/_events", "gw", ""},
		{"GET", "/r/../metrics", "gw", ""},
		{"GET", "/vault/x", "gw", key},
		{"GET", "/private/x", "gw", key},
		{"GET", "/private/x", "gw", "wrong"},
		{"GET", "/private/%2e%2e/x", "gw", ""},
		{"GET", "/x", "admin.example", ""},
		{"GET", "/x", "ADMIN.example.:80", ""},
		{"GET", "http://admin.example/x", "gw", ""},
		{"GET", "/shoal-supervisor/x", "gw", ""},
		{"OPTIONS", "*", "gw", ""},
		{"GET", "//metrics/", "gw", ""},
		{"GET", "/infoz?x=1", "gw", ""},
		{"GET", "/metrics/x;y", "gw", ""},
	} {
		f.Add(seed.method, seed.target, seed.host, seed.key)
	}
	f.Fuzz(func(t *testing.T, method, target, host, apiKey string) {
		head := method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" +
			"Shoal-Subject: root\r\nShoal_User_Token: forged\r\n"
		if apiKey != "" {
			head += "X-API-Key: " + apiKey + "\r\n"
		}
		head += "\r\n"
		var reqs []*http.Request
		if r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head))); err == nil {
			reqs = append(reqs, r) // net/http's reading
		}
		if r, err := h1.ParseRequest(head); err == nil {
			r.Body = http.NoBody
			reqs = append(reqs, r) // the engine's
		}
		for _, r := range reqs {
			r.RemoteAddr = "192.0.2.1:1234"
			g.ServeHTTP(httptest.NewRecorder(), r)
			for _, s := range rt.take() {
				checkSent(t, r, s, key)
			}
		}
	})
}

// checkSent checks one request the gateway sent for r against the
// invariant of FuzzServeHTTP.
func checkSent(t *testing.T, r *http.Request, s sent, key string) {
	t.Helper()
	u, err := url.ParseRequestURI(s.uri)
	if err != nil {
		t.Fatalf("%s %q: sent a target no server reads: %q", r.Method, r.RequestURI, s.uri)
	}
	// However the service reads the target: decoded, or with its
	// escapes taken literally, then cleaned and in any case.
	for _, p := range []string{u.Path, u.EscapedPath(), unescapeAll(u.EscapedPath())} {
		if isAdminPath(p) {
			t.Fatalf("%s %q (host %q): service %s got admin path %q", r.Method, r.RequestURI, r.Host, s.service, s.uri)
		}
	}
	if gatewayAdminPath(cleanPath(r.URL.Path)) {
		t.Fatalf("%s %q: the gateway's own admin path was forwarded to %s", r.Method, r.RequestURI, s.service)
	}
	if strings.HasPrefix(s.service, "shoal-") {
		t.Fatalf("%s %q: shoal's own %s was reached", r.Method, r.RequestURI, s.service)
	}
	if s.service == "vault" && r.Header.Get("X-API-Key") != key {
		t.Fatalf("%s %q (host %q, key %q): the guarded service was reached without its key", r.Method, r.RequestURI, r.Host, r.Header.Get("X-API-Key"))
	}
	for k := range s.header {
		switch strings.ReplaceAll(strings.ToLower(k), "_", "-") {
		case "authorization", "x-api-key", "shoal-user-token":
			t.Fatalf("%s %q: the caller's %s reached %s", r.Method, r.RequestURI, k, s.service)
		case "shoal-subject":
			if v := s.header.Get(k); k != SubjectHeader || v != "ops" {
				t.Fatalf("%s %q: %s: %q reached %s", r.Method, r.RequestURI, k, v, s.service)
			}
		}
	}
}

// unescapeAll decodes every %XX, whatever it encodes, as the laxest
// server would.
func unescapeAll(p string) string {
	for range 3 { // double encoding too
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	return path.Clean("/" + p)
}

// FuzzVerifyJWT: a bearer token is accepted only if it is one the key
// signed (the seeds that say so), with the claims checked; nothing panics.
func FuzzVerifyJWT(f *testing.F) {
	k := keys(f)
	a, err := newAuthenticator(AuthConfig{JWT: &JWTConfig{Algorithms: []string{"ES256", "RS256"}, JWKSFile: k.jwksFile, Issuer: "https://issuer", Audience: "api"}}, k.dir)
	if err != nil {
		f.Fatal(err)
	}
	mint := func(m jwt.SigningMethod, key any, kid string, c jwt.Claims) string { return sign(f, m, key, kid, c) }
	valid := mint(jwt.SigningMethodES256, k.ec, "e1", claims(nil))
	f.Add(valid)
	f.Add(mint(jwt.SigningMethodRS256, k.rsa, "r1", claims(nil)))
	f.Add(mint(jwt.SigningMethodES256, k.ec2, "e1", claims(nil)))                                                   // another key
	f.Add(mint(jwt.SigningMethodHS256, k.hmac, "h1", claims(nil)))                                                  // algorithm not accepted
	f.Add(mint(jwt.SigningMethodES256, k.ec, "e1", claims(func(c *jwt.RegisteredClaims) { c.Audience = nil })))     // no audience
	f.Add(mint(jwt.SigningMethodES256, k.ec, "e1", claims(func(c *jwt.RegisteredClaims) { c.Subject = "a\x00b" }))) // subject not printable
	f.Add(mint(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims(nil)))                           // none
	f.Add(mint(jwt.SigningMethodES256, k.ec, "nope", claims(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })))  // no exp
	f.Add(strings.Replace(valid, ".", ".e30.", 1))
	f.Add("")
	f.Add("a.b.c")
	ecPub := &k.ec.PublicKey
	f.Fuzz(func(t *testing.T, token string) {
		id, err := a.jwt.verify(token, AuthJWT)
		if err != nil {
			var ae *authError
			if !errors.As(err, &ae) || ae.status != http.StatusUnauthorized || len(token) >= 8 && strings.Contains(ae.reason, token) {
				t.Fatalf("refusal %v: want a 401 that does not echo the token", err)
			}
			return
		}
		// Accepted: the token must verify with a configured key for its
		// algorithm, and say what the policy requires.
		var c jwt.RegisteredClaims
		tok, perr := jwt.ParseWithClaims(token, &c, func(tok *jwt.Token) (any, error) {
			switch tok.Method {
			case jwt.SigningMethodES256:
				return ecPub, nil
			case jwt.SigningMethodRS256:
				return &k.rsa.PublicKey, nil
			}
			return nil, errors.New("algorithm not configured")
		}, jwt.WithAudience("api"), jwt.WithIssuer("https://issuer"), jwt.WithExpirationRequired())
		if perr != nil || !tok.Valid || id.Subject != c.Subject || id.Subject == "" || !printable(id.Subject) {
			t.Fatalf("accepted %q as %+v; an independent check says %v", token, id, perr)
		}
	})
}

// FuzzParseJWKS: whatever a key set file holds, parsing never panics and
// every key it yields is one the gateway may verify with.
func FuzzParseJWKS(f *testing.F) {
	k := keys(f)
	set, err := json.Marshal(map[string]any{"keys": []any{rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey),
		map[string]string{"kty": "oct", "kid": "h1", "k": b64url(k.hmac)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(set))
	f.Add(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`)
	f.Add(`{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`)
	f.Add(`{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA","alg":"ES384"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","alg":"HS256","n":"AQAB","e":"AQAB"}]}`)
	f.Add(`{"keys":[]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, data string) {
		keys, err := parseJWKS([]byte(data))
		if err != nil {
			return
		}
		for _, vk := range keys {
			switch key := vk.key.(type) {
			case []byte:
				if vk.method != jwt.SigningMethodHS256 || len(key) < minHMACSecret {
					t.Fatalf("oct key for %s, %d bytes", vk.method.Alg(), len(key))
				}
			case *ecdsa.PublicKey:
				if _, err := key.ECDH(); vk.method != jwt.SigningMethodES256 || err != nil {
					t.Fatalf("EC key for %s: %v", vk.method.Alg(), err)
				}
			default:
				if vk.method != jwt.SigningMethodRS256 {
					t.Fatalf("%T for %s", key, vk.method.Alg())
				}
			}
		}
	})
}

// FuzzCORSOrigin: an origin is allowed only as configured (compared
// case-insensitively), "*" is never answered with credentials, and what is
// answered is "*" or the request's own origin.
func FuzzCORSOrigin(f *testing.F) {
	policies := []*CORS{
		{AllowOrigins: []string{"https://flix.example", "http://localhost:3000"}},
		{AllowOrigins: []string{"https://flix.example"}, AllowCredentials: true},
		{AllowOrigins: []string{"*"}},
		{AllowOrigins: []string{"*", "https://flix.example"}, AllowCredentials: true}, // Validate refuses; fail closed
	}
	for _, o := range []string{"https://flix.example", "HTTPS://FLIX.EXAMPLE", "https://flix.example.evil", "null", "", "*", "https://flix.example\r\nX: y"} {
		f.Add(o, "GET")
	}
	f.Fuzz(func(t *testing.T, origin, method string) {
		for i, c := range policies {
			allow, ok := corsOrigin(c, origin)
			configured := false
			for _, o := range c.AllowOrigins {
				configured = configured || o != "*" && strings.EqualFold(o, origin) || o == "*" && !c.AllowCredentials
			}
			switch {
			case ok != (configured && origin != ""):
				t.Fatalf("policy %d, origin %q: allowed %v", i, origin, ok)
			case ok && allow != "*" && allow != origin:
				t.Fatalf("policy %d, origin %q: answered %q", i, origin, allow)
			case ok && allow == "*" && c.AllowCredentials:
				t.Fatalf("policy %d: * with credentials", i)
			}
			// The whole preflight, as a browser sends it.
			r := httptest.NewRequest(http.MethodOptions, "/", nil)
			r.Header["Origin"] = []string{origin}
			r.Header["Access-Control-Request-Method"] = []string{method}
			w := httptest.NewRecorder()
			applyCORS(c, w, r)
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" && (!ok || got != allow) {
				t.Fatalf("policy %d, origin %q: preflight allows %q", i, origin, got)
			}
		}
	})
}

// traceparentSyntax is the W3C Trace Context header, written out from the
// specification, independently of validTraceparent.
var traceparentSyntax = regexp.MustCompile(`^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$`)

func referenceTraceparent(s string) bool {
	m := traceparentSyntax.FindStringSubmatch(s)
	switch {
	case m == nil, m[1] == "ff", m[1] == "00" && m[5] != "":
		return false
	case m[2] == strings.Repeat("0", 32), m[3] == strings.Repeat("0", 16):
		return false
	case m[1] == "00" && m[4] > "03":
		// Flags beyond sampled and random on version 00: OpenTelemetry
		// refuses the header (a new trace starts), stricter than a reader
		// that ignores unknown flags, which is fine.
		return false
	}
	return true
}

// FuzzTraceparent: what the gateway takes in from a caller (client.Extract,
// as its server middleware does) continues exactly the valid traceparents,
// with their trace ID, and drops every other.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := http.Header{"Traceparent": {s}, "Tracestate": {"k=v"}}
		sc := trace.SpanContextFromContext(client.Extract(context.Background(), h))
		if sc.IsValid() != referenceTraceparent(s) {
			t.Fatalf("traceparent %q taken in as %v, the specification says valid = %v", s, sc.IsValid(), !sc.IsValid())
		}
		if sc.IsValid() && sc.TraceID().String() != traceparentSyntax.FindStringSubmatch(s)[2] {
			t.Fatalf("traceparent %q continued as trace %s", s, sc.TraceID())
		}
	})
}
