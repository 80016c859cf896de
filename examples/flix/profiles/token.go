package main

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-dev/shoal"
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

// devKeySHA256 is the SHA-256 of the public half (PKIX DER) of the
// development key pair in examples/flix/keys, which is published: anyone
// can sign tokens with it, wherever it is copied to.
const devKeySHA256 = "3c8458f9fa299defe72a3e4cbf8aef17471fe37556e421e626807e988ee87039"

// issuer signs sign-in tokens: ES256 JWTs whose subject is a profile id.
type issuer struct {
	key *ecdsa.PrivateKey
	now func() time.Time // time.Now unless a test says otherwise
}

// loadIssuer reads the signing key at path. The development key is
// refused unless dev (shoal.EnvDev set), and logged to log as a warning
// when it is allowed.
func loadIssuer(path string, dev bool, log *slog.Logger) (*issuer, error) {
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
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("JWT signing key %s: %w", path, err)
	}
	if sum := sha256.Sum256(pub); hex.EncodeToString(sum[:]) == devKeySHA256 {
		if !dev {
			return nil, fmt.Errorf("JWT signing key %s is flix's development key, published with the code: anyone could sign in as anyone; "+
				"set %s to a key of your own, or %s=1 where that is what you want (development only)", path, envJWTKey, shoal.EnvDev)
		}
		log.Warn("profiles: DEVELOPMENT JWT KEY IN USE: anyone can sign in as anyone; never expose this system",
			"key", path, "because", shoal.EnvDev+"=1")
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
