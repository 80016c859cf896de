package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-dev/shoal/internal/verified"
)

// UserTokenHeader carries a user token from the gateway to a service, and
// from a service to the services it calls on the same user's behalf.
const UserTokenHeader = "Shoal-User-Token"

// DefaultTokenTTL is how long a user token is valid: long enough for a
// request and the calls it fans out into, short enough that a token copied
// out of a log is soon worthless.
const DefaultTokenTTL = 60 * time.Second

const (
	maxTokenTTL   = 10 * time.Minute // longest token a verifier accepts
	tokenLeeway   = 5 * time.Second  // clock skew between hosts
	maxTokenLen   = 8 << 10          // a token is ~1 KB; junk is rejected unread
	maxSubjectLen = 256
	// Cache bounds (see put). A full cache is emptied, not evicted entry by
	// entry: simple, and at worst it costs one signature per token again.
	tokenCacheSize  = 4096
	signerCacheSize = 64
)

// A user token is a JWT (RFC 7519) signed ES256 with the issuing service's
// own certificate key, that certificate in its x5c header. Services verify
// it with the CA bundle they already hold: no extra key to distribute or
// rotate, and a token can only be minted by a service whose certificate
// the policy names as an issuer (the gateway), for as long as that
// certificate is valid.
//
// Claims: iss is the issuer's SPIFFE ID, sub the user (a profile id, an API
// key's name), aud the system's ID (spiffe://<system>, valid at every
// service of the system) unless the issuer narrowed it, iat and exp (at
// most 10 minutes apart), and auth, how the issuer verified the user.
type userClaims struct {
	jwt.RegisteredClaims
	Auth string `json:"auth,omitempty"`
}

// User is a verified end user, as a user token tells it.
type User struct {
	Subject string    // who: a profile id, an API key's name
	Auth    string    // how the issuer verified them, e.g. "jwt" or "api_key:mobile"
	Issuer  ID        // the service that vouched for them (the gateway)
	Expiry  time.Time // when the token stops being accepted
	Token   string    // the token itself, to forward on calls made for this user
}

// TokenIssuer signs user tokens with its [Source]'s certificate key. The
// gateway holds one: after verifying a request's credentials it attaches
// Token(subject, auth) as UserTokenHeader. Tokens are reused for half their
// lifetime per (subject, auth), so a busy user costs one signature per 30 s,
// and downstream verifiers hit their cache. Safe for concurrent use.
type TokenIssuer struct {
	src *Source
	ttl time.Duration

	mu    sync.Mutex
	cache map[issuedKey]issued
}

type issuedKey struct{ subject, auth string }

type issued struct {
	token   string
	creds   *Credentials // the signer; a renewed certificate signs anew
	renewAt time.Time
}

// NewTokenIssuer returns an issuer of tokens valid for ttl (zero:
// DefaultTokenTTL; at most 10 minutes) at every service of src's system.
func NewTokenIssuer(src *Source, ttl time.Duration) (*TokenIssuer, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > maxTokenTTL {
		return nil, fmt.Errorf("identity: token TTL %v must be in (0, %v]", ttl, maxTokenTTL)
	}
	return &TokenIssuer{src: src, ttl: ttl, cache: make(map[issuedKey]issued)}, nil
}

// Token returns a token for subject, verified by the method auth.
func (t *TokenIssuer) Token(subject, auth string) (string, error) {
	if subject == "" || len(subject) > maxSubjectLen {
		return "", fmt.Errorf("identity: token subject must be 1 to %d bytes", maxSubjectLen)
	}
	creds := t.src.Credentials()
	now := time.Now()
	k := issuedKey{subject, auth}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.cache[k]; ok && e.creds == creds && now.Before(e.renewAt) {
		return e.token, nil
	}
	key, ok := creds.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("identity: %s's key is %T; user tokens need ECDSA P-256", creds.ID, creds.Cert.PrivateKey)
	}
	exp := now.Add(t.ttl)
	if na := creds.Cert.Leaf.NotAfter; exp.After(na) {
		exp = na // a token never outlives its signer's certificate
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, userClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    creds.ID.String(),
			Subject:   subject,
			Audience:  jwt.ClaimStrings{SystemID(creds.ID.TrustDomain)},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Auth: auth,
	})
	tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(creds.Cert.Leaf.Raw)}
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("identity: sign user token: %w", err)
	}
	put(t.cache, k, issued{token: s, creds: creds, renewAt: now.Add(exp.Sub(now) / 2)}, tokenCacheSize)
	return s, nil
}

// TokenVerifier checks user tokens against its [Source]'s bundle. A token
// is accepted if its signature verifies with the certificate in its x5c
// header, that certificate chains to the bundle now and belongs to one of
// the issuer services, its audience includes this system (or this service),
// and it is within its lifetime (5 s of clock skew allowed).
//
// Verified tokens are cached until they expire, and verified issuer
// certificates until theirs do (or the bundle changes): a token seen before
// costs a map lookup instead of an ECDSA verification. Safe for concurrent
// use.
type TokenVerifier struct {
	src     *Source
	issuers []string

	tokens *verified.Cache[User]

	mu      sync.RWMutex
	signers map[string]signer // by x5c entry
}

type signer struct {
	creds *Credentials // the bundle it was verified with
	id    ID
	key   *ecdsa.PublicKey
	until time.Time
}

// NewTokenVerifier returns a verifier accepting tokens signed by the named
// services of src's system (normally the gateway's name).
func NewTokenVerifier(src *Source, issuers ...string) (*TokenVerifier, error) {
	if len(issuers) == 0 {
		return nil, errors.New("identity: a token verifier needs at least one issuer service")
	}
	for _, s := range issuers {
		if err := CheckService(s); err != nil {
			return nil, fmt.Errorf("identity: token issuer: %w", err)
		}
	}
	return &TokenVerifier{
		src:     src,
		issuers: slices.Clone(issuers),
		tokens:  verified.New[User](tokenCacheSize),
		signers: make(map[string]signer),
	}, nil
}

// ErrInvalidToken wraps every reason a user token is refused.
var ErrInvalidToken = errors.New("identity: invalid user token")

// Verify returns the user a token vouches for. Errors wrap ErrInvalidToken
// and never include the token.
func (v *TokenVerifier) Verify(token string) (User, error) {
	if token == "" || len(token) > maxTokenLen {
		return User{}, fmt.Errorf("%w: %d bytes", ErrInvalidToken, len(token))
	}
	now := time.Now()
	if u, ok := v.tokens.Get(token, now); ok {
		return u, nil
	}

	creds := v.src.Credentials()
	var sg signer
	var claims userClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		var err error
		sg, err = v.signerOf(t, creds, now)
		return sg.key, err
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithAudience(SystemID(creds.ID.TrustDomain), creds.ID.String()),
		jwt.WithStrictDecoding(),
	)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case claims.Issuer != sg.id.String():
		return User{}, fmt.Errorf("%w: iss %q is not its signer %s", ErrInvalidToken, claims.Issuer, sg.id)
	case claims.Subject == "" || len(claims.Subject) > maxSubjectLen:
		return User{}, fmt.Errorf("%w: sub must be 1 to %d bytes", ErrInvalidToken, maxSubjectLen)
	case claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > maxTokenTTL:
		return User{}, fmt.Errorf("%w: lifetime over %v", ErrInvalidToken, maxTokenTTL)
	}
	u := User{Subject: claims.Subject, Auth: claims.Auth, Issuer: sg.id, Expiry: claims.ExpiresAt.Time, Token: token}
	v.tokens.Put(token, u, u.Expiry.Add(tokenLeeway))
	return u, nil
}

// signerOf returns the verified issuer of a token from its x5c header.
func (v *TokenVerifier) signerOf(t *jwt.Token, creds *Credentials, now time.Time) (signer, error) {
	x5c, ok := t.Header["x5c"].([]any)
	if !ok || len(x5c) != 1 {
		return signer{}, errors.New("x5c header must hold exactly the signer's certificate")
	}
	entry, ok := x5c[0].(string)
	if !ok {
		return signer{}, errors.New("x5c entry is not a string")
	}
	v.mu.RLock()
	sg, ok := v.signers[entry]
	v.mu.RUnlock()
	if ok && sg.creds.Bundle == creds.Bundle && now.Before(sg.until) {
		return sg, nil
	}
	der, err := base64.StdEncoding.Strict().DecodeString(entry)
	if err != nil {
		return signer{}, fmt.Errorf("x5c: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return signer{}, fmt.Errorf("x5c: %w", err)
	}
	id, err := creds.Bundle.Verify(cert, now)
	if err != nil {
		return signer{}, err
	}
	if !slices.Contains(v.issuers, id.Service) {
		return signer{}, fmt.Errorf("%s may not issue user tokens", id)
	}
	key, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return signer{}, fmt.Errorf("%s's key is %T, want ECDSA", id, cert.PublicKey)
	}
	sg = signer{creds: creds, id: id, key: key, until: cert.NotAfter}
	v.mu.Lock()
	put(v.signers, entry, sg, signerCacheSize)
	v.mu.Unlock()
	return sg, nil
}

// put stores v under k in a cache bounded to limit entries, emptying it
// first when full.
func put[K comparable, V any](m map[K]V, k K, v V, limit int) {
	if len(m) >= limit {
		clear(m)
	}
	m[k] = v
}
