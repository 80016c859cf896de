package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/manifest"
)

// testKeys are real keys, generated once per test binary (RSA generation is
// slow under -race).
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
	hmac      []byte // the secret as written to the key file
	dir       string
	hsFile    string // HS256 secret
	rsaPEM    string // RS256 public key
	ecPEM     string // ES256 public key
	rsaPEMRaw []byte
	jwksFile  string // rsa (kid r1), rsa2 (kid r2), ec (kid e1), hmac (kid h1)
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		k := &testKeys{}
		var err error
		k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		k.hmac = []byte(hex.EncodeToString(randBytes(32))) // 64 bytes, no white space to trim
		k.dir, err = os.MkdirTemp("", "gateway-auth-test")
		must(err)
		write := func(name string, data []byte) string {
			must(os.WriteFile(filepath.Join(k.dir, name), data, 0o600))
			return name
		}
		k.hsFile = write("hs.secret", append(append([]byte(nil), k.hmac...), '\n'))
		k.rsaPEMRaw = pemPublic(&k.rsa.PublicKey)
		k.rsaPEM = write("rsa.pem", k.rsaPEMRaw)
		k.ecPEM = write("ec.pem", pemPublic(&k.ec.PublicKey))
		set := map[string]any{"keys": []any{
			rsaJWK("r1", &k.rsa.PublicKey),
			rsaJWK("r2", &k.rsa2.PublicKey),
			ecJWK("e1", &k.ec.PublicKey),
			map[string]string{"kty": "oct", "kid": "h1", "k": b64url(k.hmac)},
			map[string]string{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"}, // skipped
			map[string]string{"kty": "RSA", "kid": "enc", "use": "enc"},                 // skipped
		}}
		data, err := json.Marshal(set)
		must(err)
		k.jwksFile = write("jwks.json", data)
		keysVal = k
	})
	return keysVal
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pemPublic(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64url(pub.N.Bytes()), "e": b64url(big.NewInt(int64(pub.E)).Bytes())}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]string {
	b, err := pub.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64url(b[1:33]), "y": b64url(b[33:65])}
}

// claims are valid for audience "api" from issuer "https://issuer", for an hour.
func claims(mod func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
	now := time.Now()
	c := jwt.RegisteredClaims{
		Issuer:    "https://issuer",
		Subject:   "alice",
		Audience:  jwt.ClaimStrings{"other", "api"},
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		IssuedAt:  jwt.NewNumericDate(now),
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAuth(t *testing.T, c AuthConfig) *authenticator {
	t.Helper()
	a, err := newAuthenticator(c, keys(t).dir)
	if err != nil {
		t.Fatalf("newAuthenticator: %v", err)
	}
	return a
}

func jwtConfig(alg, keyFile string) *JWTConfig {
	return &JWTConfig{Algorithms: []string{alg}, KeyFile: keyFile, Issuer: "https://issuer", Audience: "api"}
}

func sha(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func TestAuthJWT(t *testing.T) {
	k := keys(t)
	hs := mustAuth(t, AuthConfig{JWT: jwtConfig("HS256", k.hsFile)})
	rs := mustAuth(t, AuthConfig{JWT: jwtConfig("RS256", k.rsaPEM)})
	es := mustAuth(t, AuthConfig{JWT: jwtConfig("ES256", k.ecPEM)})
	set := mustAuth(t, AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256", "ES256", "HS256"}, JWKSFile: k.jwksFile, Audience: "api"}})
	// A JWKS accepting HS256 and RS256: the setting where alg confusion bites.
	mixed := mustAuth(t, AuthConfig{JWT: &JWTConfig{Algorithms: []string{"HS256", "RS256"}, JWKSFile: k.jwksFile, Audience: "api"}})

	valid := claims(nil)
	alice := Identity{Subject: "alice", Method: "jwt", Key: "jwt:alice"}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", valid)
	confused := sign(t, jwt.SigningMethodHS256, k.rsaPEMRaw, "", valid)
	confusedKid := sign(t, jwt.SigningMethodHS256, k.rsaPEMRaw, "r1", valid)

	for _, tc := range []struct {
		name   string
		a      *authenticator
		token  string
		want   Identity
		reason string // wanted error reason; "" for success
		cause  error
	}{
		{name: "HS256", a: hs, token: sign(t, jwt.SigningMethodHS256, k.hmac, "", valid), want: alice},
		{name: "RS256", a: rs, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", valid), want: alice},
		{name: "ES256", a: es, token: sign(t, jwt.SigningMethodES256, k.ec, "", valid), want: alice},
		{name: "key_file ignores the kid", a: es, token: sign(t, jwt.SigningMethodES256, k.ec, "issuer-key-1", valid), want: alice},
		{name: "key_file, kid, other key", a: es, reason: "invalid signature or algorithm not accepted", token: sign(t, jwt.SigningMethodES256, mustEC(t), "issuer-key-1", valid)},
		{name: "audience as a string", a: rs, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"api"} })), want: alice},
		{name: "within leeway", a: rs, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Second))
		})), want: alice},
		{name: "expired", a: rs, reason: "token expired", cause: jwt.ErrTokenExpired, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		}))},
		{name: "no exp", a: rs, reason: "token lacks a required claim (exp, aud, iss)", cause: jwt.ErrTokenRequiredClaimMissing, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = nil
		}))},
		{name: "not yet valid", a: rs, reason: "token not valid yet", cause: jwt.ErrTokenNotValidYet, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
		}))},
		{name: "issued in the future", a: rs, reason: "token issued in the future", cause: jwt.ErrTokenUsedBeforeIssued, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
		}))},
		{name: "wrong audience", a: rs, reason: "token not issued for this audience", cause: jwt.ErrTokenInvalidAudience, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.Audience = jwt.ClaimStrings{"billing"}
		}))},
		{name: "no audience", a: rs, reason: "token lacks a required claim (exp, aud, iss)", cause: jwt.ErrTokenRequiredClaimMissing, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.Audience = nil
		}))},
		{name: "wrong issuer", a: rs, reason: "token from an unexpected issuer", cause: jwt.ErrTokenInvalidIssuer, token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
			c.Issuer = "https://evil"
		}))},
		{name: "issuer not checked when not configured", a: set, token: sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c *jwt.RegisteredClaims) {
			c.Issuer = "https://anyone"
		})), want: alice},
		{name: "RS256 other key", a: rs, reason: "invalid signature or algorithm not accepted", cause: jwt.ErrTokenSignatureInvalid, token: sign(t, jwt.SigningMethodRS256, k.rsa2, "", valid)},
		{name: "ES256 other key", a: es, reason: "invalid signature or algorithm not accepted", cause: jwt.ErrTokenSignatureInvalid, token: sign(t, jwt.SigningMethodES256, k.ec2, "", valid)},
		{name: "HS256 other secret", a: hs, reason: "invalid signature or algorithm not accepted", cause: jwt.ErrTokenSignatureInvalid, token: sign(t, jwt.SigningMethodHS256, randBytes(32), "", valid)},
		{name: "algorithm not configured", a: rs, reason: "invalid signature or algorithm not accepted", token: sign(t, jwt.SigningMethodES256, k.ec, "", valid)},
		{name: "alg none", a: rs, reason: "invalid signature or algorithm not accepted", token: noneTok},
		{name: "alg none, jwks", a: set, reason: "invalid signature or algorithm not accepted", token: noneTok},
		{name: "alg unknown", a: rs, reason: "invalid signature or algorithm not accepted", token: sign(t, jwt.SigningMethodRS512, k.rsa, "", valid)},
		// The classic attack: sign HS256 with the public key's bytes.
		{name: "alg confusion, key_file", a: rs, reason: "invalid signature or algorithm not accepted", token: confused},
		{name: "alg confusion, jwks no kid", a: mixed, reason: "invalid signature or algorithm not accepted", cause: jwt.ErrTokenSignatureInvalid, token: confused},
		{name: "alg confusion, jwks RSA kid", a: mixed, reason: "token signed with an unknown key", cause: errUnknownKey, token: confusedKid},
		{name: "missing sub", a: rs, reason: "token has no subject", token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) { c.Subject = "" }))},
		{name: "sub too long", a: rs, reason: "token subject is too long or not printable", token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) { c.Subject = strings.Repeat("a", 257) }))},
		{name: "sub with newline", a: rs, reason: "token subject is too long or not printable", token: sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) { c.Subject = "a\r\nShoal-Auth: x" }))},
		{name: "jwks kid r1", a: set, token: sign(t, jwt.SigningMethodRS256, k.rsa, "r1", valid), want: alice},
		{name: "jwks kid r2", a: set, token: sign(t, jwt.SigningMethodRS256, k.rsa2, "r2", valid), want: alice},
		{name: "jwks kid e1", a: set, token: sign(t, jwt.SigningMethodES256, k.ec, "e1", valid), want: alice},
		{name: "jwks kid h1", a: set, token: sign(t, jwt.SigningMethodHS256, k.hmac, "h1", valid), want: alice},
		{name: "jwks no kid tries all", a: set, token: sign(t, jwt.SigningMethodRS256, k.rsa2, "", valid), want: alice},
		{name: "jwks unknown kid", a: set, reason: "token signed with an unknown key", cause: errUnknownKey, token: sign(t, jwt.SigningMethodRS256, k.rsa, "nope", valid)},
		{name: "jwks wrong kid", a: set, reason: "invalid signature or algorithm not accepted", token: sign(t, jwt.SigningMethodRS256, k.rsa2, "r1", valid)},
		{name: "jwks kid of another type", a: set, reason: "token signed with an unknown key", token: sign(t, jwt.SigningMethodES256, k.ec, "r1", valid)},
		{name: "malformed", a: rs, reason: "malformed token", cause: jwt.ErrTokenMalformed, token: "not.a.jwt"},
		{name: "empty", a: rs, reason: "malformed Authorization header", token: ""},
		{name: "huge", a: rs, reason: "malformed token", token: strings.Repeat("a", maxTokenLen+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/svc/x", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			got, err := tc.a.authenticate(r, AuthJWT)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("authenticate: %v", err)
				}
				if got != tc.want {
					t.Fatalf("identity = %+v, want %+v", got, tc.want)
				}
				return
			}
			var ae *authError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *authError", err)
			}
			if ae.status != http.StatusUnauthorized || ae.code != "invalid_token" || ae.reason != tc.reason {
				t.Fatalf("err = %d %s %q, want 401 invalid_token %q (cause %v)", ae.status, ae.code, ae.reason, tc.reason, ae.err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("errors.Is(err, %v) = false; err: %v", tc.cause, ae.err)
			}
			if got != (Identity{}) {
				t.Errorf("identity = %+v on failure", got)
			}
		})
	}
}

func TestAuthModes(t *testing.T) {
	k := keys(t)
	const key = "k3y-0f-h1gh-entr0py-1234567890abcdef"
	both := mustAuth(t, AuthConfig{
		JWT:     jwtConfig("RS256", k.rsaPEM),
		APIKeys: []APIKey{{Name: "ci-bot", SHA256: sha(key)}, {Name: "other", SHA256: strings.ToUpper(sha("other-key"))}},
	})
	jwtOnly := mustAuth(t, AuthConfig{JWT: jwtConfig("RS256", k.rsaPEM)})
	token := sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(nil))
	alice := Identity{Subject: "alice", Method: "jwt", Key: "jwt:alice"}
	bot := Identity{Subject: "ci-bot", Method: "api_key", Key: "key:ci-bot"}

	bearer := map[string][]string{"Authorization": {"Bearer " + token}}
	apiKeyAuthz := map[string][]string{"Authorization": {"ApiKey " + key}}
	xAPIKey := map[string][]string{"X-Api-Key": {key}}

	for _, tc := range []struct {
		name   string
		a      *authenticator
		mode   AuthMode
		header http.Header
		want   Identity
		code   string // wanted error code; "" for success
		status int
	}{
		{name: "none ignores credentials", a: both, mode: AuthNone, header: http.Header{"Authorization": {"Bearer garbage"}}},
		{name: "empty mode is none", a: both, mode: "", header: http.Header{"X-Api-Key": {"wrong"}}},
		{name: "none with nil authenticator", a: nil, mode: AuthNone},
		{name: "jwt", a: both, mode: AuthJWT, header: bearer, want: alice},
		{name: "lowercase scheme", a: both, mode: AuthJWT, header: http.Header{"Authorization": {"bearer " + token}}, want: alice},
		{name: "jwt missing", a: both, mode: AuthJWT, code: "unauthenticated", status: 401},
		{name: "jwt given api key", a: both, mode: AuthJWT, header: xAPIKey, code: "unauthenticated", status: 401},
		{name: "api key in Authorization", a: both, mode: AuthAPIKey, header: apiKeyAuthz, want: bot},
		{name: "api key in X-API-Key", a: both, mode: AuthAPIKey, header: xAPIKey, want: bot},
		{name: "api key hash in upper case", a: both, mode: AuthAPIKey, header: http.Header{"X-Api-Key": {"other-key"}}, want: Identity{Subject: "other", Method: "api_key", Key: "key:other"}},
		{name: "api key wrong", a: both, mode: AuthAPIKey, header: http.Header{"X-Api-Key": {key + "x"}}, code: "invalid_token", status: 401},
		{name: "api key empty", a: both, mode: AuthAPIKey, header: http.Header{"Authorization": {"ApiKey  "}}, code: "invalid_token", status: 401},
		{name: "api key missing", a: both, mode: AuthAPIKey, code: "unauthenticated", status: 401},
		{name: "api key given jwt", a: both, mode: AuthAPIKey, header: bearer, code: "unauthenticated", status: 401},
		{name: "two X-API-Key", a: both, mode: AuthAPIKey, header: http.Header{"X-Api-Key": {key, key}}, code: "invalid_token", status: 401},
		{name: "any: jwt", a: both, mode: AuthAny, header: bearer, want: alice},
		{name: "any: api key", a: both, mode: AuthAny, header: apiKeyAuthz, want: bot},
		{name: "any: X-API-Key", a: both, mode: AuthAny, header: xAPIKey, want: bot},
		{name: "any: nothing", a: both, mode: AuthAny, code: "unauthenticated", status: 401},
		{name: "any: Basic", a: both, mode: AuthAny, header: http.Header{"Authorization": {"Basic YTpi"}}, code: "unauthenticated", status: 401},
		{name: "any: bad bearer does not fall back", a: both, mode: AuthAny, header: http.Header{"Authorization": {"Bearer x.y.z"}, "X-Api-Key": {key}}, code: "invalid_token", status: 401},
		{name: "any, jwt only configured: api key", a: jwtOnly, mode: AuthAny, header: xAPIKey, code: "unauthenticated", status: 401},
		{name: "no scheme", a: both, mode: AuthAny, header: http.Header{"Authorization": {token}}, code: "invalid_token", status: 401},
		{name: "two Authorization", a: both, mode: AuthAny, header: http.Header{"Authorization": {"Bearer " + token, "Bearer " + token}}, code: "invalid_token", status: 401},
		{name: "nil authenticator fails closed", a: nil, mode: AuthJWT, header: bearer, code: "internal", status: 500},
		{name: "api_key mode, none configured", a: jwtOnly, mode: AuthAPIKey, header: xAPIKey, code: "internal", status: 500},
		{name: "unknown mode fails closed", a: both, mode: "JWT", header: bearer, code: "internal", status: 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/svc/x", nil)
			for name, vs := range tc.header {
				for _, v := range vs {
					r.Header.Add(name, v)
				}
			}
			got, err := tc.a.authenticate(r, tc.mode)
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("authenticate = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			var ae *authError
			if !errors.As(err, &ae) || ae.code != tc.code || ae.status != tc.status {
				t.Fatalf("authenticate = %+v, %v; want %d %s", got, err, tc.status, tc.code)
			}
		})
	}
}

func TestAuthErrorResponse(t *testing.T) {
	k := keys(t)
	a := mustAuth(t, AuthConfig{JWT: jwtConfig("RS256", k.rsaPEM), APIKeys: []APIKey{{Name: "bot", SHA256: sha("secret-key-123")}}})
	expired := sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	}))
	for _, tc := range []struct {
		name      string
		mode      AuthMode
		authz     string
		status    int
		code      string
		challenge []string
	}{
		{name: "missing, jwt", mode: AuthJWT, status: 401, code: "unauthenticated", challenge: []string{`Bearer realm="shoal"`}},
		{name: "missing, api_key", mode: AuthAPIKey, status: 401, code: "unauthenticated", challenge: []string{`ApiKey realm="shoal"`}},
		{name: "missing, any", mode: AuthAny, status: 401, code: "unauthenticated", challenge: []string{`Bearer realm="shoal"`, `ApiKey realm="shoal"`}},
		{name: "expired", mode: AuthJWT, authz: "Bearer " + expired, status: 401, code: "invalid_token",
			challenge: []string{`Bearer realm="shoal", error="invalid_token", error_description="token expired"`}},
		{name: "bad api key", mode: AuthAPIKey, authz: "ApiKey not-the-secret-key", status: 401, code: "invalid_token", challenge: []string{`ApiKey realm="shoal"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/svc/x", nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			_, err := a.authenticate(r, tc.mode)
			if err == nil {
				t.Fatal("authenticate succeeded")
			}
			w := httptest.NewRecorder()
			writeAuthError(w, err)
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
			var body shoal.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Errorf("body = %s (%v), want code %s", w.Body, err, tc.code)
			}
			if got := w.Header().Values("WWW-Authenticate"); strings.Join(got, "|") != strings.Join(tc.challenge, "|") {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
			}
			if cred, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(tc.authz, "Bearer "), "ApiKey "), "."); cred != "" {
				if strings.Contains(w.Body.String(), cred) || strings.Contains(err.Error(), cred) {
					t.Errorf("the credential is echoed: %s / %v", w.Body, err)
				}
			}
		})
	}
	t.Run("foreign error", func(t *testing.T) {
		w := httptest.NewRecorder()
		writeAuthError(w, errors.New("boom"))
		if w.Code != 401 || len(w.Header().Values("WWW-Authenticate")) != 2 {
			t.Errorf("got %d %q", w.Code, w.Header().Values("WWW-Authenticate"))
		}
	})
}

func TestAuthConfigValidate(t *testing.T) {
	ok := func() *JWTConfig { return &JWTConfig{Algorithms: []string{"RS256"}, KeyFile: "k.pem", Audience: "api"} }
	good := sha("k")
	for _, tc := range []struct {
		name string
		c    AuthConfig
		want string // substring of the error; "" for valid
	}{
		{name: "zero", c: AuthConfig{}},
		{name: "jwt", c: AuthConfig{JWT: ok()}},
		{name: "jwks several algorithms", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256", "ES256", "HS256"}, JWKSFile: "k.json", Audience: "api"}}},
		{name: "no algorithms", c: AuthConfig{JWT: &JWTConfig{KeyFile: "k.pem", Audience: "api"}}, want: "algorithms is required"},
		{name: "alg none", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256", "none"}, KeyFile: "k.pem", Audience: "api"}}, want: `"none"`},
		{name: "alg None", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"None"}, KeyFile: "k.pem", Audience: "api"}}, want: `"none"`},
		{name: "alg unsupported", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS512"}, KeyFile: "k.pem", Audience: "api"}}, want: "RS512"},
		{name: "neither key", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256"}, Audience: "api"}}, want: "one of key_file or jwks_file"},
		{name: "both keys", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256"}, KeyFile: "k.pem", JWKSFile: "k.json", Audience: "api"}}, want: "exclusive"},
		{name: "key_file, two algorithms", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256", "HS256"}, KeyFile: "k.pem", Audience: "api"}}, want: "one algorithm"},
		{name: "no audience", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256"}, KeyFile: "k.pem"}}, want: "audience is required"},
		{name: "negative leeway", c: AuthConfig{JWT: &JWTConfig{Algorithms: []string{"RS256"}, KeyFile: "k.pem", Audience: "api", Leeway: -time.Second}}, want: "leeway"},
		{name: "api keys", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: good}, {Name: "b.c_d-1", SHA256: sha("j")}}}},
		{name: "bad hex", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: "zz" + good[2:]}}}, want: "64 hex digits"},
		{name: "short hash", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: good[:62]}}}, want: "64 hex digits"},
		{name: "key itself", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: "my-secret-key"}}}, want: "64 hex digits"},
		{name: "no name", c: AuthConfig{APIKeys: []APIKey{{SHA256: good}}}, want: "name"},
		{name: "name with colon", c: AuthConfig{APIKeys: []APIKey{{Name: "a:b", SHA256: good}}}, want: "name"},
		{name: "duplicate name", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: good}, {Name: "a", SHA256: sha("j")}}}, want: `duplicate name "a"`},
		{name: "duplicate key", c: AuthConfig{APIKeys: []APIKey{{Name: "a", SHA256: good}, {Name: "b", SHA256: strings.ToUpper(good)}}}, want: `same key as "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := newAuthenticator(tc.c, t.TempDir()); nerr == nil {
				t.Errorf("newAuthenticator accepted what Validate rejects")
			}
		})
	}
}

func TestAuthModeValidate(t *testing.T) {
	for _, m := range []AuthMode{"", AuthNone, AuthJWT, AuthAPIKey, AuthAny} {
		if err := m.Validate(); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	for _, m := range []AuthMode{"JWT", "apikey", "basic"} {
		if err := m.Validate(); err == nil {
			t.Errorf("%q: valid", m)
		}
	}
}

func TestAuthKeyFiles(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	write := func(name, data string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	shared := func(name string) string { return filepath.Join(k.dir, name) }
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := func(keys ...map[string]string) string {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return string(b)
	}
	ec := ecJWK("e", &k.ec.PublicKey)
	badPoint := ecJWK("e", &k.ec.PublicKey)
	badPoint["y"] = badPoint["x"]
	for _, tc := range []struct {
		name string
		c    JWTConfig
		want string
	}{
		{name: "short secret", c: JWTConfig{Algorithms: []string{"HS256"}, KeyFile: write("short", "  too-short-secret \n")}, want: "at least 32"},
		{name: "PEM as HS256 secret", c: JWTConfig{Algorithms: []string{"HS256"}, KeyFile: shared(k.rsaPEM)}, want: "HS256 needs a shared secret"},
		{name: "missing file", c: JWTConfig{Algorithms: []string{"RS256"}, KeyFile: "nope.pem"}, want: "nope.pem"},
		{name: "EC key for RS256", c: JWTConfig{Algorithms: []string{"RS256"}, KeyFile: shared(k.ecPEM)}, want: "ec.pem"},
		{name: "RSA key for ES256", c: JWTConfig{Algorithms: []string{"ES256"}, KeyFile: shared(k.rsaPEM)}, want: "rsa.pem"},
		{name: "small RSA key", c: JWTConfig{Algorithms: []string{"RS256"}, KeyFile: write("small.pem", string(pemPublic(&small.PublicKey)))}, want: "1024 bits"},
		{name: "P-384 for ES256", c: JWTConfig{Algorithms: []string{"ES256"}, KeyFile: write("p384.pem", string(pemPublic(&p384.PublicKey)))}, want: "P-256"},
		{name: "jwks not JSON", c: JWTConfig{Algorithms: []string{"RS256"}, JWKSFile: write("bad.json", "{")}, want: "bad.json"},
		{name: "jwks empty", c: JWTConfig{Algorithms: []string{"RS256"}, JWKSFile: write("empty.json", `{"keys":[]}`)}, want: "no usable"},
		{name: "jwks no key for algorithm", c: JWTConfig{Algorithms: []string{"RS256"}, JWKSFile: write("ec.json", jwks(ec))}, want: "no key for algorithms"},
		{name: "jwks point off curve", c: JWTConfig{Algorithms: []string{"ES256"}, JWKSFile: write("off.json", jwks(badPoint))}, want: "EC key"},
		{name: "jwks alg mismatch", c: JWTConfig{Algorithms: []string{"RS256"}, JWKSFile: write("alg.json", jwks(map[string]string{"kty": "RSA", "alg": "HS256", "n": b64url(k.rsa.N.Bytes()), "e": "AQAB"}))}, want: "does not match"},
		{name: "jwks short oct", c: JWTConfig{Algorithms: []string{"HS256"}, JWKSFile: write("oct.json", jwks(map[string]string{"kty": "oct", "k": b64url([]byte("short"))}))}, want: "at least 32"},
		{name: "jwks duplicate kid", c: JWTConfig{Algorithms: []string{"ES256"}, JWKSFile: write("dup.json", jwks(ec, ec))}, want: "duplicate kid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Audience = "api"
			_, err := newAuthenticator(AuthConfig{JWT: &tc.c}, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("newAuthenticator = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("absolute path", func(t *testing.T) {
		c := jwtConfig("RS256", filepath.Join(k.dir, k.rsaPEM))
		if _, err := newAuthenticator(AuthConfig{JWT: c}, "/nonexistent"); err != nil {
			t.Fatal(err)
		}
	})
}

// parseGateway reads doc, a manifest's gateway: section, as the gateway
// reads its --config file.
func parseGateway(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := manifest.ParseGateway("shoal.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAuthConfigYAML checks that the config decodes as operators write it.
func TestAuthConfigYAML(t *testing.T) {
	const doc = `
gateway:
  auth:
    jwt:
      algorithms: [RS256, ES256]
      jwks_file: keys/jwks.json
      issuer: https://issuer
      audience: api
      leeway: 45s
    api_keys:
      - name: ci-bot
        sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
`
	c := parseGateway(t, doc).Auth
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.JWT.Leeway != 45*time.Second || c.JWT.JWKSFile != "keys/jwks.json" || len(c.JWT.Algorithms) != 2 || c.APIKeys[0].Name != "ci-bot" {
		t.Fatalf("decoded %+v %+v", c, *c.JWT)
	}
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A verified token is served from the cache until its expiry plus leeway,
// and checked again after that; a failed one is never cached.
func TestAuthJWTCache(t *testing.T) {
	k := keys(t)
	v := mustAuth(t, AuthConfig{JWT: jwtConfig("ES256", k.ecPEM)}).jwt
	tok := sign(t, jwt.SigningMethodES256, k.ec, "", claims(nil))
	bad := sign(t, jwt.SigningMethodES256, mustEC(t), "", claims(nil))
	alice := Identity{Subject: "alice", Method: "jwt", Key: "jwt:alice"}
	if id, err := v.verify(tok, AuthJWT); err != nil || id != alice {
		t.Fatalf("first verify: %+v, %v", id, err)
	}
	if _, err := v.verify(bad, AuthJWT); err == nil {
		t.Fatal("a token signed by another key verified")
	}
	// From here on every signature check fails: only the cache can answer.
	v.parser = jwt.NewParser(jwt.WithValidMethods([]string{"none"}))
	if id, err := v.verify(tok, AuthJWT); err != nil || id != alice {
		t.Fatalf("verified token, again: %+v, %v; want a cache hit", id, err)
	}
	if _, err := v.verify(bad, AuthJWT); err == nil {
		t.Fatal("a refused token was cached")
	}
	v.seen.Put(tok, alice, time.Now()) // as if its expiry (plus leeway) had passed
	if _, err := v.verify(tok, AuthJWT); err == nil {
		t.Fatal("an expired cache entry was used")
	}
}
