package main

import (
	"crypto/ecdsa"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// What the tokens say; the gateway checks iss, aud and exp, and verifies
// the signature with the public half of the key (examples/flix/keys/
// jwt-dev.pub for the dev key).
const (
	TokenIssuer   = "flix-profiles"
	TokenAudience = "flix"
	TokenKeyID    = "flix-dev"
	TokenTTL      = time.Hour
)

// Where the signing key is: a PEM EC P-256 private key (SEC 1 or PKCS #8).
// The default is relative to the working directory, the repository's root
// under `shoal up`.
const (
	envJWTKey     = "FLIX_JWT_KEY"
	defaultJWTKey = "examples/flix/keys/jwt-dev.key"
)

// issuer signs sign-in tokens: ES256 JWTs whose subject is a profile id.
type issuer struct {
	key *ecdsa.PrivateKey
	now func() time.Time // time.Now unless a test says otherwise
}

// loadIssuer reads the signing key at path.
func loadIssuer(path string) (*issuer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the JWT signing key: %w (set %s)", err, envJWTKey)
	}
	key, err := jwt.ParseECPrivateKeyFromPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("JWT signing key %s: %w", path, err)
	}
	if key.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("JWT signing key %s: curve %s, want P-256 for ES256", path, key.Curve.Params().Name)
	}
	return &issuer{key: key, now: time.Now}, nil
}

// issue returns a token for profile and when it expires.
func (is *issuer) issue(profile string) (string, time.Time, error) {
	now := is.now().Truncate(time.Second) // NumericDate is whole seconds
	exp := now.Add(TokenTTL)
	// MapClaims, so that aud is the string "flix" as documented (a
	// RegisteredClaims' audience is always encoded as a list).
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": TokenIssuer,
		"aud": TokenAudience,
		"sub": profile,
		"iat": now.Unix(),
		"exp": exp.Unix(),
	})
	t.Header["kid"] = TokenKeyID
	s, err := t.SignedString(is.key)
	return s, exp, err
}
