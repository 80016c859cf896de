package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
)

func signinBody(email, password, profile string) string {
	b, _ := json.Marshal(SigninRequest{Email: email, Password: password, Profile: profile})
	return string(b)
}

// A sign-in's token verifies with the public key file alone, as the
// gateway verifies it, and says what the contract says.
func TestSigninToken(t *testing.T) {
	srv, _ := newTestServer(t)
	before := time.Now().Truncate(time.Second)
	r := flixtest.Do(t, srv, "POST", "/signin", signinBody("user5@flix.example", "flix", "p0010"))
	if r.Status != 200 {
		t.Fatalf("sign-in: %d %s", r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	var got Signin
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatal(err)
	}
	want := Profile{ID: "p0010", Account: 5, Name: got.Profile.Name, Maturity: MaturityKids, MayWatch: []string{"all"}}
	if !cmp.Equal(got.Profile, want) || !strings.HasSuffix(got.Profile.Name, "'s kids") {
		t.Errorf("profile %+v, want %+v, a kids profile", got.Profile, want)
	}

	pemBytes, err := os.ReadFile(testPubKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwt.ParseECPublicKeyFromPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(got.Token, claims, func(tok *jwt.Token) (any, error) {
		if kid := tok.Header["kid"]; kid != TokenKeyID {
			return nil, fmt.Errorf("kid %v, want %s", kid, TokenKeyID)
		}
		return pub, nil
	},
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer("flix-profiles"),
		jwt.WithAudience("flix"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err != nil || !tok.Valid {
		t.Fatalf("token does not verify with %s: %v", testPubKey, err)
	}
	if tok.Header["alg"] != "ES256" || tok.Header["kid"] != "flix-dev" {
		t.Errorf("header %v", tok.Header)
	}
	if claims["sub"] != "p0010" || claims["aud"] != "flix" || claims["iss"] != "flix-profiles" {
		t.Errorf("claims %v", claims)
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat.Before(before) || iat.After(time.Now()) || exp.Sub(iat.Time) != time.Hour {
		t.Errorf("iat %v, exp %v: want now and an hour later", iat, exp)
	}
	if got.ExpiresAt != exp.UnixMilli() {
		t.Errorf("expires_at %d, token's exp %d", got.ExpiresAt, exp.UnixMilli())
	}

	// A token signed by another key does not verify with the public key.
	other, err := jwt.ParseECPrivateKeyFromPEM(mustGenerateKey(t))
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := (&issuer{key: other, now: time.Now}).issue("p0010")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(forged, func(*jwt.Token) (any, error) { return pub, nil }); err == nil {
		t.Error("a token signed with another key verified")
	}
}

// Every refused sign-in gets the same answer, whichever part was wrong.
func TestSigninRefused(t *testing.T) {
	srv, _ := newTestServer(t)
	tests := []struct{ name, email, password, profile string }{
		{"wrong password", "user1@flix.example", "flax", "p0001"},
		{"unknown email", "nobody@flix.example", "flix", "p0001"},
		{"profile of another account", "user1@flix.example", "flix", "p0003"},
		{"unknown profile", "user1@flix.example", "flix", "p9999"},
		{"wrong password, own profile", "user1@flix.example", "xxxx", "p0002"},
		{"huge password", "user1@flix.example", strings.Repeat("x", 2000), "p0001"},
	}
	var first string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := flixtest.Do(t, srv, "POST", "/signin", signinBody(tt.email, tt.password, tt.profile))
			if r.Status != http.StatusUnauthorized {
				t.Fatalf("%d %s, want 401", r.Status, r.Body)
			}
			if first == "" {
				first = r.Body
			}
			if r.Body != first {
				t.Errorf("answer %s differs from %s", r.Body, first)
			}
		})
	}
	// Emails are not case-sensitive; passwords are.
	if r := flixtest.Do(t, srv, "POST", "/signin", signinBody(" User1@Flix.Example", "flix", "p0002")); r.Status != 200 {
		t.Errorf("email in other case: %d %s", r.Status, r.Body)
	}
	if r := flixtest.Do(t, srv, "POST", "/signin", signinBody("user1@flix.example", "FLIX", "p0002")); r.Status != 401 {
		t.Errorf("password in other case: %d %s", r.Status, r.Body)
	}
}

func TestValidation(t *testing.T) {
	srv, _ := newTestServer(t)
	tests := []struct {
		name, method, path, body string
		header                   []string
		wantStatus               int
		wantCode                 string
	}{
		{"no profile", "POST", "/signin", `{"email":"user1@flix.example","password":"flix"}`, nil, 400, "invalid_argument"},
		{"empty body", "POST", "/signin", ``, nil, 400, "invalid_argument"},
		{"unknown field", "POST", "/signin", `{"email":"a","password":"b","profile":"c","pin":1}`, nil, 400, "invalid_argument"},
		{"two objects", "POST", "/signin", `{}{}`, nil, 400, "invalid_argument"},
		{"too big", "POST", "/signin", `{"email":"` + strings.Repeat("a", 5000) + `"}`, nil, 400, "invalid_argument"},
		{"GET signin", "GET", "/signin", ``, nil, 405, "method_not_allowed"},
		{"bad profile id", "GET", "/profiles/p%201", ``, nil, 400, "invalid_argument"},
		{"unknown profile", "GET", "/profiles/p9999", ``, flixtest.As(t, "p9999"), 404, "not_found"},
		{"another's profile", "GET", "/profiles/p0001", ``, flixtest.As(t, "p0002"), 403, "forbidden"},
		{"a profile for no one", "GET", "/profiles/p0001", ``, nil, 401, "unauthenticated"},
		{"a header is no sign-in", "GET", "/profiles/p0001", ``, []string{"Shoal-Subject", "p0001"}, 401, "unauthenticated"},
		{"me for no one", "GET", "/me", ``, nil, 401, "unauthenticated"},
		{"me for a header", "GET", "/me", ``, []string{"Shoal-Subject", "p0001"}, 401, "unauthenticated"},
		{"me unknown", "GET", "/me", ``, flixtest.As(t, "p9999"), 404, "not_found"},
		{"DELETE profile", "DELETE", "/profiles/p0001", ``, nil, 405, "method_not_allowed"},
		{"unknown route", "GET", "/accounts", ``, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := flixtest.Do(t, srv, tt.method, tt.path, tt.body, tt.header...)
			if r.Status != tt.wantStatus {
				t.Fatalf("%d %s, want %d", r.Status, r.Body, tt.wantStatus)
			}
			if code := flixtest.ErrorCode(t, r.Body); code != tt.wantCode {
				t.Errorf("code %q, want %q", code, tt.wantCode)
			}
		})
	}
	if r := flixtest.Do(t, srv, "PUT", "/me", ""); r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", r.Header.Get("Allow"))
	}
}

func TestProfiles(t *testing.T) {
	srv, _ := newTestServer(t)
	tests := []struct {
		path string
		as   string // the signed-in profile
		want Profile
	}{
		{"/profiles/p0001", "p0001", Profile{ID: "p0001", Account: 1, Maturity: MaturityAdult, MayWatch: []string{"all", "teen", "adult"}}},
		{"/profiles/p0010", "p0010", Profile{ID: "p0010", Account: 5, Maturity: MaturityKids, MayWatch: []string{"all"}}},
		{"/profiles/p0500", "p0500", Profile{ID: "p0500", Account: 250, Maturity: MaturityKids, MayWatch: []string{"all"}}},
		{"/profiles/p0499", "p0499", Profile{ID: "p0499", Account: 250, Maturity: MaturityAdult, MayWatch: []string{"all", "teen", "adult"}}},
		{"/me", "p0042", Profile{ID: "p0042", Account: 21, Maturity: MaturityAdult, MayWatch: []string{"all", "teen", "adult"}}},
	}
	for _, tt := range tests {
		r := flixtest.Do(t, srv, "GET", tt.path, "", flixtest.As(t, tt.as)...)
		var got Profile
		if err := json.Unmarshal([]byte(r.Body), &got); r.Status != 200 || err != nil {
			t.Fatalf("GET %s: %d %s", tt.path, r.Status, r.Body)
		}
		tt.want.Name = got.Name
		if !cmp.Equal(got, tt.want) || got.Name == "" {
			t.Errorf("GET %s = %+v, want %+v", tt.path, got, tt.want)
		}
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	srv, _ := newTestServer(t)
	if r := flixtest.Do(t, srv, "GET", "/openapi.json", ""); r.Status != 200 || !strings.Contains(r.Body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
	}
}

// The maturity rule lives here: each level and what it may watch.
func TestMayWatch(t *testing.T) {
	for maturity, want := range map[string][]string{
		MaturityKids: {"all"}, MaturityTeen: {"all", "teen"}, MaturityAdult: {"all", "teen", "adult"},
		"": {"all"}, "toddler": {"all"}, // unknown: what kids may watch
	} {
		if got := mayWatch(maturity); !slices.Equal(got, want) {
			t.Errorf("mayWatch(%q) = %v, want %v", maturity, got, want)
		}
	}
}

// mustGenerateKey returns a new P-256 key, PEM-encoded.
func mustGenerateKey(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}
