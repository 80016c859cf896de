package gateway

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// jwk is the part of an RFC 7517 JSON Web Key that the gateway uses.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// oct
	K string `json:"k"`
}

// parseJWKS reads a JSON Web Key Set: kty RSA (n, e) for RS256, EC P-256
// (x, y) for ES256, oct (k) for HS256. Keys for encryption (use "enc") and
// of other types (e.g. OKP) are skipped, since a published set may hold
// them for other consumers; a malformed key of a supported type is an
// error, since it is surely a mistake. A key's alg, when present, must
// agree with its type.
func parseJWKS(data []byte) ([]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keys []verifyKey
	seen := make(map[string]bool)
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		method, key, err := k.parse()
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (kid %q): %w", i, k.Kid, err)
		}
		if method == nil {
			continue
		}
		id := method.Alg() + "/" + k.Kid
		if seen[id] {
			return nil, fmt.Errorf("keys[%d]: duplicate kid %q for %s", i, k.Kid, method.Alg())
		}
		seen[id] = true
		keys = append(keys, verifyKey{kid: k.Kid, method: method, key: key})
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key (RSA, EC P-256 or oct)")
	}
	return keys, nil
}

// parse returns the key and the method it verifies, or a nil method for a
// key type the gateway does not use.
func (k jwk) parse() (jwt.SigningMethod, any, error) {
	var method jwt.SigningMethod
	var key any
	switch k.Kty {
	case "RSA":
		n, err := b64(k.N, "n")
		if err != nil {
			return nil, nil, err
		}
		e, err := b64(k.E, "e")
		if err != nil {
			return nil, nil, err
		}
		if len(e) == 0 || len(e) > 4 {
			return nil, nil, errors.New("RSA exponent e out of range")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits {
			return nil, nil, fmt.Errorf("RSA key has %d bits, want at least %d", pub.N.BitLen(), minRSABits)
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, nil, fmt.Errorf("RSA exponent %d is invalid", pub.E)
		}
		method, key = jwt.SigningMethodRS256, pub
	case "EC":
		if k.Crv != "P-256" {
			return nil, nil, fmt.Errorf("EC curve %q: only P-256 (ES256) is supported", k.Crv)
		}
		x, err := b64(k.X, "x")
		if err != nil {
			return nil, nil, err
		}
		y, err := b64(k.Y, "y")
		if err != nil {
			return nil, nil, err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, nil, errors.New("EC P-256 coordinates must be 32 bytes each")
		}
		// ParseUncompressedPublicKey rejects points not on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, nil, fmt.Errorf("EC key: %w", err)
		}
		method, key = jwt.SigningMethodES256, pub
	case "oct":
		secret, err := b64(k.K, "k")
		if err != nil {
			return nil, nil, err
		}
		if len(secret) < minHMACSecret {
			return nil, nil, fmt.Errorf("oct key is %d bytes, want at least %d", len(secret), minHMACSecret)
		}
		method, key = jwt.SigningMethodHS256, secret
	default:
		return nil, nil, nil
	}
	if k.Alg != "" && k.Alg != method.Alg() {
		return nil, nil, fmt.Errorf("alg %q does not match kty %s (want %s)", k.Alg, k.Kty, method.Alg())
	}
	return method, key, nil
}

// b64 decodes a base64url member, without padding as RFC 7517 has it.
func b64(s, member string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("%s is required", member)
	}
	// Some publishers pad despite RFC 7515; the padding carries nothing.
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url: %w", member, err)
	}
	return b, nil
}
