package identity

import (
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// craft signs arbitrary claims and headers with a credential's key, as a
// buggy or hostile issuer could.
func craft(t testing.TB, by *Credentials, method jwt.SigningMethod, key any, claims userClaims, edit func(h map[string]any)) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["x5c"] = []string{base64.StdEncoding.EncodeToString(by.Cert.Leaf.Raw)}
	if edit != nil {
		edit(tok.Header)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenVerify(t *testing.T) {
	flix := newCA(t, "flix")
	b := bundleOf(t, flix)
	gw := credsOf(t, flix, "gateway", b)
	catalog := credsOf(t, flix, "catalog", b)
	strangeCA := newCA(t, "flix")
	stranger := credsOf(t, strangeCA, "gateway", bundleOf(t, strangeCA))
	ratings := NewSource(credsOf(t, flix, "ratings", b))
	v, err := NewTokenVerifier(ratings, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	gwKey := gw.Cert.PrivateKey.(*ecdsa.PrivateKey)
	now := time.Now()
	claims := func(edit func(c *userClaims)) userClaims {
		c := userClaims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    gw.ID.String(),
			Subject:   "p0001",
			Audience:  jwt.ClaimStrings{"spiffe://flix"},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		}, Auth: "jwt"}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	valid := craft(t, gw, jwt.SigningMethodES256, gwKey, claims(nil), nil)

	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{"valid", valid, ""},
		{"audience: this service", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.Audience = jwt.ClaimStrings{"spiffe://flix/ratings"} }), nil), ""},
		{"audience: another service", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.Audience = jwt.ClaimStrings{"spiffe://flix/catalog"} }), nil), "audience"},
		{"audience: another system", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.Audience = jwt.ClaimStrings{"spiffe://other"} }), nil), "audience"},
		{"expired", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Minute))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
		}), nil), "expired"},
		{"issued in the future", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(2 * time.Minute))
		}), nil), "used before issued"},
		{"no expiry", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.ExpiresAt = nil }), nil), "exp claim is required"},
		{"lifetime too long", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour)) }), nil), "lifetime"},
		{"no subject", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.Subject = "" }), nil), "sub"},
		{"iss is not the signer", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(func(c *userClaims) { c.Issuer = "spiffe://flix/admin" }), nil), "iss"},
		{"signed by a service that may not issue", craft(t, catalog, jwt.SigningMethodES256, catalog.Cert.PrivateKey, claims(func(c *userClaims) { c.Issuer = catalog.ID.String() }), nil), "may not issue"},
		{"signed by an untrusted CA's gateway", craft(t, stranger, jwt.SigningMethodES256, stranger.Cert.PrivateKey, claims(nil), nil), "unknown authority"},
		{"x5c of the gateway, key of catalog", craft(t, gw, jwt.SigningMethodES256, catalog.Cert.PrivateKey, claims(nil), nil), "signature is invalid"},
		{"no x5c", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(nil), func(h map[string]any) { delete(h, "x5c") }), "x5c"},
		{"two x5c", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(nil), func(h map[string]any) { h["x5c"] = []string{"a", "b"} }), "x5c"},
		{"x5c not base64", craft(t, gw, jwt.SigningMethodES256, gwKey, claims(nil), func(h map[string]any) { h["x5c"] = []string{"!!"} }), "x5c"},
		{"HS256 keyed with anything", craft(t, gw, jwt.SigningMethodHS256, []byte("secret"), claims(nil), nil), "signing method HS256 is invalid"},
		{"alg none", craft(t, gw, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil), "signing method none is invalid"},
		{"tampered subject", tamper(t, valid), "signature is invalid"},
		{"truncated", valid[:len(valid)-10], "invalid"},
		{"empty", "", "0 bytes"},
		{"huge", strings.Repeat("a", maxTokenLen+1), "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := v.Verify(tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify = %+v, %v; want ErrInvalidToken containing %q", u, err, tt.wantErr)
				}
				if len(tt.token) > 20 && strings.Contains(err.Error(), tt.token) {
					t.Error("the error repeats the token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Subject != "p0001" || u.Auth != "jwt" || u.Issuer != gw.ID || u.Token != tt.token {
				t.Errorf("Verify = %+v", u)
			}
		})
	}
}

// tamper swaps the payload for one naming another subject, keeping the
// signature.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(payload), "p0001", "p0002", 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
}

// TestTokenLifetime: the issuer reuses a token for half its life, a
// verifier accepts it until it expires (and a little skew), and a renewed
// signing certificate signs anew.
func TestTokenLifetime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flix := newCA(t, "flix")
		b := bundleOf(t, flix)
		gwSrc := NewSource(credsOf(t, flix, "gateway", b))
		iss, err := NewTokenIssuer(gwSrc, 0)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewTokenVerifier(NewSource(credsOf(t, flix, "ratings", b)), "gateway")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := iss.Token("p0001", "jwt")
		if err != nil {
			t.Fatal(err)
		}
		u, err := v.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := u.Expiry, time.Now().Add(DefaultTokenTTL).Truncate(time.Second); !got.Equal(want) {
			t.Errorf("expiry %v, want %v", got, want)
		}
		time.Sleep(DefaultTokenTTL/2 - time.Second)
		if again, _ := iss.Token("p0001", "jwt"); again != tok {
			t.Error("the issuer did not reuse a token with more than half its life left")
		}
		if other, _ := iss.Token("p0002", "jwt"); other == tok {
			t.Error("two subjects share a token")
		}
		time.Sleep(2 * time.Second)
		fresh, err := iss.Token("p0001", "jwt")
		if err != nil || fresh == tok {
			t.Fatalf("past half its life the issuer still hands out the old token (%v)", err)
		}
		time.Sleep(DefaultTokenTTL/2 + tokenLeeway - 2*time.Second) // 1 s before expiry + skew
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("within the skew allowance: %v", err)
		}
		time.Sleep(2 * time.Second)
		if _, err := v.Verify(tok); err == nil {
			t.Fatal("an expired token (cached while valid) is still accepted")
		}

		gwSrc.Set(credsOf(t, flix, "gateway", b))
		renewed, err := iss.Token("p0001", "jwt")
		if err != nil || renewed == fresh {
			t.Fatalf("a renewed certificate reuses the old token (%v)", err)
		}
		if _, err := v.Verify(renewed); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNewTokenIssuerVerifier(t *testing.T) {
	ca := newCA(t, "flix")
	src := NewSource(credsOf(t, ca, "gateway", bundleOf(t, ca)))
	for _, ttl := range []time.Duration{-time.Second, maxTokenTTL + time.Second} {
		if _, err := NewTokenIssuer(src, ttl); err == nil {
			t.Errorf("NewTokenIssuer(%v) succeeded", ttl)
		}
	}
	if _, err := NewTokenVerifier(src); err == nil {
		t.Error("a verifier without issuers")
	}
	if _, err := NewTokenVerifier(src, "Gateway"); err == nil {
		t.Error("a verifier with an invalid issuer name")
	}
	iss, _ := NewTokenIssuer(src, 0)
	if _, err := iss.Token("", "jwt"); err == nil {
		t.Error("a token for nobody")
	}
}

// FuzzVerifyToken: arbitrary input never panics, and no change to a valid
// token makes it vouch for anything else (encodings the parser accepts
// twice would show up as a different user here).
func FuzzVerifyToken(f *testing.F) {
	ca := newCA(f, "flix")
	b := bundleOf(f, ca)
	gw := NewSource(credsOf(f, ca, "gateway", b))
	iss, err := NewTokenIssuer(gw, maxTokenTTL)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := iss.Token("p0001", "jwt")
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewTokenVerifier(NewSource(credsOf(f, ca, "ratings", b)), "gateway")
	if err != nil {
		f.Fatal(err)
	}
	want, err := v.Verify(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add(strings.Replace(valid, ".", "..", 1))
	f.Fuzz(func(t *testing.T, s string) {
		u, err := v.Verify(s)
		if err != nil {
			return
		}
		if u.Subject != want.Subject || u.Auth != want.Auth || u.Issuer != want.Issuer || !u.Expiry.Equal(want.Expiry) {
			t.Fatalf("Verify(%q) = %+v; the only valid token says %+v", s, u, want)
		}
	})
}
