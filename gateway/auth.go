package gateway

import (
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/internal/verified"
)

// SubjectHeader carries the verified subject (a token's sub claim, or an API
// key's name) to the service, so that services need not verify credentials
// themselves. The gateway sets it and strips incoming copies: clients cannot
// forge it.
const SubjectHeader = "Shoal-Subject"

// AuthHeader says how the gateway verified SubjectHeader: "jwt" or
// "api_key:<name>". Like SubjectHeader it is set only by the gateway.
const AuthHeader = "Shoal-Auth"

// DefaultLeeway is the clock skew JWTConfig.Leeway allows when zero: tokens
// are issued by other machines, whose clocks are never quite ours.
const DefaultLeeway = 30 * time.Second

// Limits on what a client sends and what a token carries: far above any real
// credential, low enough that junk costs little to reject.
const (
	maxTokenLen   = 8 << 10
	maxAPIKeyLen  = 1 << 10
	maxSubjectLen = 256
	minHMACSecret = 32 // bytes: the HS256 hash size; shorter secrets can be brute-forced offline
	minRSABits    = 2048
	maxKeyFile    = 1 << 20
)

// jwtFamily maps an accepted algorithm to its signing method. The method's
// key type is what prevents algorithm confusion: keys are stored with the
// method they verify and only ever handed to that method.
func jwtFamily(alg string) (jwt.SigningMethod, bool) {
	switch alg {
	case "HS256":
		return jwt.SigningMethodHS256, true
	case "RS256":
		return jwt.SigningMethodRS256, true
	case "ES256":
		return jwt.SigningMethodES256, true
	}
	return nil, false
}

// Identity is who made a request, as far as the gateway verified it.
type Identity struct {
	// Subject is the token's sub claim or the API key's name; empty when
	// anonymous.
	Subject string
	// Method is "jwt", "api_key", or "" when anonymous.
	Method string
	// Key is the rate-limit key: "jwt:"+Subject or "key:"+name; empty when
	// anonymous (the gateway then limits by client address).
	Key string
}

// authHeader is the AuthHeader value for id: "jwt", "api_key:<name>", or ""
// when anonymous.
func (id Identity) authHeader() string {
	if id.Method == "api_key" {
		return "api_key:" + id.Subject
	}
	return id.Method
}

// authenticator verifies credentials against an AuthConfig whose key files
// it has read. It is immutable, hence safe for concurrent use; a reload
// builds a new one.
type authenticator struct {
	jwt     *jwtVerifier                 // nil: no JWT configured
	apiKeys map[[sha256.Size]byte]string // SHA-256 of the key → name; nil: none configured
}

// jwtVerifier holds a parser (safe for concurrent use: its options are set
// once, in NewParser), the keys, and the tokens they verified: a client
// sends the same token on every request, and a cached one costs a map
// lookup instead of a signature check. A reload builds a new verifier, so
// a token verified by a key since removed is not accepted from the cache.
type jwtVerifier struct {
	parser *jwt.Parser
	keys   []verifyKey
	leeway time.Duration
	seen   *verified.Cache[Identity]
}

// verifiedTokens bounds a verifier's cache of tokens.
const verifiedTokens = 8192

// verifyKey is one key and the only signing method it may verify.
type verifyKey struct {
	kid    string
	method jwt.SigningMethod
	key    any // []byte, *rsa.PublicKey or *ecdsa.PublicKey, as method expects
}

// newAuthenticator validates c and reads its key files now, so that a bad
// key fails the (re)load rather than every request. Paths are relative to
// baseDir unless absolute; errors name the file.
func newAuthenticator(c AuthConfig, baseDir string) (*authenticator, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a := &authenticator{}
	if c.JWT != nil {
		v, err := newJWTVerifier(*c.JWT, baseDir)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		a.jwt = v
	}
	if len(c.APIKeys) > 0 {
		a.apiKeys = make(map[[sha256.Size]byte]string, len(c.APIKeys))
		for _, k := range c.APIKeys {
			var h [sha256.Size]byte
			hex.Decode(h[:], []byte(k.SHA256)) // checked by Validate
			a.apiKeys[h] = k.Name
		}
	}
	return a, nil
}

func newJWTVerifier(c JWTConfig, baseDir string) (*jwtVerifier, error) {
	var keys []verifyKey
	if c.KeyFile != "" {
		path := resolvePath(baseDir, c.KeyFile)
		data, err := readKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("key_file: %w", err)
		}
		method, _ := jwtFamily(c.Algorithms[0])
		k, err := parseKeyFile(data, method)
		if err != nil {
			return nil, fmt.Errorf("key_file %s: %w", path, err)
		}
		keys = []verifyKey{{method: method, key: k}}
	} else {
		path := resolvePath(baseDir, c.JWKSFile)
		data, err := readKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		keys, err = parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwks_file %s: %w", path, err)
		}
		// Keys for algorithms not accepted could never verify a token:
		// drop them, and fail if nothing is left.
		keys = slices.DeleteFunc(keys, func(k verifyKey) bool { return !slices.Contains(c.Algorithms, k.method.Alg()) })
		if len(keys) == 0 {
			return nil, fmt.Errorf("jwks_file %s: no key for algorithms %v", path, c.Algorithms)
		}
	}
	leeway := c.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(c.Algorithms)),
		jwt.WithAudience(c.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithStrictDecoding(),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	return &jwtVerifier{parser: jwt.NewParser(opts...), keys: keys, leeway: leeway, seen: verified.New[Identity](verifiedTokens)}, nil
}

func resolvePath(baseDir, p string) string {
	if filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// readKeyFile reads a key file; errors (from os) name it.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// parseKeyFile reads the one key of a key_file for method.
func parseKeyFile(data []byte, method jwt.SigningMethod) (any, error) {
	pemData := strings.HasPrefix(strings.TrimSpace(string(data)), "-----BEGIN")
	switch method {
	case jwt.SigningMethodHS256:
		if pemData {
			// A public key used as an HMAC secret lets anyone who has the
			// public key sign tokens.
			return nil, errors.New("holds a PEM key, but HS256 needs a shared secret")
		}
		secret := []byte(strings.TrimSpace(string(data)))
		if len(secret) < minHMACSecret {
			return nil, fmt.Errorf("HS256 secret is %d bytes, want at least %d", len(secret), minHMACSecret)
		}
		return secret, nil
	case jwt.SigningMethodRS256:
		k, err := jwt.ParseRSAPublicKeyFromPEM(data)
		if err != nil {
			return nil, fmt.Errorf("RS256 needs a PEM RSA public key: %w", err)
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return k, nil
	case jwt.SigningMethodES256:
		k, err := jwt.ParseECPublicKeyFromPEM(data)
		if err != nil {
			return nil, fmt.Errorf("ES256 needs a PEM EC P-256 public key: %w", err)
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EC key is on %s, ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported algorithm %s", method.Alg())
}

// authError is a refused request: what the client is told (status, code,
// a short reason that never contains the credential) and which challenges
// to send. err, when set, is the underlying cause, for errors.Is and logs.
type authError struct {
	status int
	code   string
	reason string
	mode   AuthMode
	err    error
}

func (e *authError) Error() string { return e.code + ": " + e.reason }
func (e *authError) Unwrap() error { return e.err }

// Sentinel causes, for errors.Is in tests and logs.
var (
	errNoCredentials  = errors.New("no credentials")
	errUnknownKey     = errors.New("unknown signing key")
	errNotConfigured  = errors.New("authentication not configured")
	errBadCredentials = errors.New("invalid credentials")
)

func unauthenticated(mode AuthMode, reason string) *authError {
	return &authError{status: http.StatusUnauthorized, code: "unauthenticated", reason: reason, mode: mode, err: errNoCredentials}
}

func invalid(mode AuthMode, reason string, cause error) *authError {
	if cause == nil {
		cause = errBadCredentials
	}
	return &authError{status: http.StatusUnauthorized, code: "invalid_token", reason: reason, mode: mode, err: cause}
}

// authenticate verifies r's credentials as mode requires and says who sent
// it. AuthNone (and "") succeeds with the anonymous Identity whatever r
// carries. a may be nil, meaning nothing is configured: then every other
// mode fails (500: the config check should have refused such a route).
// Errors are *authError, for writeAuthError.
//
// The Authorization header, when present, decides: Bearer is a JWT, ApiKey
// an API key, anything else is refused; X-API-Key is read only without an
// Authorization header. A bad credential is refused even in AuthAny, never
// passed over for another one.
func (a *authenticator) authenticate(r *http.Request, mode AuthMode) (Identity, error) {
	if mode == "" || mode == AuthNone {
		return Identity{}, nil
	}
	if err := mode.Validate(); err != nil {
		return Identity{}, &authError{status: http.StatusInternalServerError, code: "internal", reason: "route has an invalid auth mode", mode: mode, err: err}
	}
	wantJWT := mode == AuthJWT || mode == AuthAny
	wantKey := mode == AuthAPIKey || mode == AuthAny
	if a == nil || !(wantJWT && a.jwt != nil || wantKey && a.apiKeys != nil) {
		// The config check refuses such routes when it is loaded; fail
		// closed if it happens anyway.
		return Identity{}, &authError{status: http.StatusInternalServerError, code: "internal", reason: "authentication is not configured for this route", mode: mode, err: errNotConfigured}
	}

	authz := r.Header.Values("Authorization")
	if len(authz) > 1 {
		return Identity{}, invalid(mode, "more than one Authorization header", nil)
	}
	var scheme, cred string
	if len(authz) == 1 {
		var ok bool
		scheme, cred, ok = strings.Cut(strings.TrimSpace(authz[0]), " ")
		if !ok {
			return Identity{}, invalid(mode, "malformed Authorization header", nil)
		}
		cred = strings.TrimSpace(cred)
	}
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if !wantJWT || a.jwt == nil {
			return Identity{}, unauthenticated(mode, "this route does not accept bearer tokens")
		}
		return a.jwt.verify(cred, mode)
	case strings.EqualFold(scheme, "ApiKey"):
	case scheme != "":
		return Identity{}, unauthenticated(mode, "unsupported Authorization scheme")
	default:
		keys := r.Header.Values("X-API-Key")
		if len(keys) > 1 {
			return Identity{}, invalid(mode, "more than one X-API-Key header", nil)
		}
		if len(keys) == 0 {
			return Identity{}, unauthenticated(mode, "credentials required")
		}
		cred = strings.TrimSpace(keys[0])
	}
	if !wantKey || a.apiKeys == nil {
		return Identity{}, unauthenticated(mode, "this route does not accept API keys")
	}
	return a.verifyAPIKey(cred, mode)
}

// verifyAPIKey looks the key's hash up in a map. The lookup is not constant
// time, but what its timing could leak is how a guess's SHA-256 compares
// with the stored hashes, and learning bits of a hash gets an attacker no
// closer to a high-entropy key whose hash it is (that would take a
// preimage). Comparing against the key itself would need crypto/subtle.
func (a *authenticator) verifyAPIKey(key string, mode AuthMode) (Identity, error) {
	if key == "" || len(key) > maxAPIKeyLen {
		return Identity{}, invalid(mode, "API key not recognised", nil)
	}
	name, ok := a.apiKeys[sha256.Sum256([]byte(key))]
	if !ok {
		return Identity{}, invalid(mode, "API key not recognised", nil)
	}
	return Identity{Subject: name, Method: "api_key", Key: "key:" + name}, nil
}

// verify checks a bearer token; the reasons it gives are fixed strings, so
// that nothing of the token is echoed.
func (v *jwtVerifier) verify(token string, mode AuthMode) (Identity, error) {
	if token == "" || len(token) > maxTokenLen {
		return Identity{}, invalid(mode, "malformed token", nil)
	}
	now := time.Now()
	if id, ok := v.seen.Get(token, now); ok {
		return id, nil
	}
	var claims jwt.RegisteredClaims
	if _, err := v.parser.ParseWithClaims(token, &claims, v.keyFor); err != nil {
		return Identity{}, invalid(mode, jwtReason(err), err)
	}
	sub := claims.Subject
	switch {
	case sub == "":
		return Identity{}, invalid(mode, "token has no subject", nil)
	case len(sub) > maxSubjectLen || !printable(sub):
		return Identity{}, invalid(mode, "token subject is too long or not printable", nil)
	}
	id := Identity{Subject: sub, Method: "jwt", Key: "jwt:" + sub}
	// Expiry is required, and the other time claims, once met, stay met.
	v.seen.Put(token, id, claims.ExpiresAt.Add(v.leeway))
	return id, nil
}

// keyFor is the parser's Keyfunc. It offers only keys stored for the
// token's own signing method (already checked against Algorithms by the
// parser), so an HS256 token is never verified with an RSA key's bytes. A
// kid picks one key of a JWKS; without a kid every key for the method is
// tried, and a key without a kid (key_file) is tried for any token.
func (v *jwtVerifier) keyFor(t *jwt.Token) (any, error) {
	kid, hasKid := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if k.method != t.Method {
			continue
		}
		if hasKid && k.kid == kid {
			return k.key, nil
		}
		if !hasKid || k.kid == "" {
			// A key from key_file has no kid of its own: it verifies
			// tokens whatever kid their issuer gave them.
			set.Keys = append(set.Keys, k.key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, errUnknownKey
	}
	return set, nil
}

// jwtReason turns a jwt error into a short reason for the client.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, errUnknownKey):
		return "token signed with an unknown key"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid signature or algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token not issued for this audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from an unexpected issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim (exp, aud, iss)"
	}
	return "invalid token"
}

// printable reports whether s is valid UTF-8 of printable characters (no
// controls), fit for a header value and a log line.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) })
}

// writeAuthError answers a request that authenticate refused: 401 with
// WWW-Authenticate challenges for the schemes the route accepts (RFC 6750's
// error="invalid_token" for a bad bearer token), or 500 when the gateway
// itself is misconfigured. The body is a JSON error from shoal.WriteError.
func writeAuthError(w http.ResponseWriter, err error) {
	var ae *authError
	if !errors.As(err, &ae) {
		ae = unauthenticated(AuthAny, "credentials required")
	}
	if ae.status == http.StatusUnauthorized {
		bearer := `Bearer realm="shoal"`
		if ae.code == "invalid_token" {
			bearer += `, error="invalid_token", error_description="` + ae.reason + `"`
		}
		h := w.Header()
		if ae.mode != AuthAPIKey {
			h.Add("WWW-Authenticate", bearer)
		}
		if ae.mode != AuthJWT {
			h.Add("WWW-Authenticate", `ApiKey realm="shoal"`)
		}
	}
	shoal.WriteError(w, ae.status, ae.code, ae.reason)
}
