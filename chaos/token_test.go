package chaos

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustParse(t *testing.T, s string) []Fault {
	t.Helper()
	fs, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestTokenSortsFaultsForEachHop(t *testing.T) {
	s := NewSigner(newKey(t))
	tok, err := s.Faults(mustParse(t, "ratings:delay=300ms;api>ratings:reset;api>catalog:error=503;catalog:abort"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		self, here string
		links      map[string]string
	}{
		{"ratings", "ratings:delay=300ms", nil},
		{"api", "", map[string]string{"ratings": "api>ratings:reset", "catalog": "api>catalog:error=503"}},
		{"catalog", "catalog:abort", nil},
		{"search", "", nil},
	} {
		v, err := NewVerifier(s.PublicKey(), tt.self)
		if err != nil {
			t.Fatal(err)
		}
		set, err := v.Verify(tok)
		if err != nil {
			t.Fatalf("%s: %v", tt.self, err)
		}
		if set.Token() != tok || len(set.Faults()) != 4 {
			t.Errorf("%s: the set lost its token or faults", tt.self)
		}
		if got := Format(set.Here()); got != tt.here {
			t.Errorf("%s: here %q, want %q", tt.self, got, tt.here)
		}
		for callee, want := range tt.links {
			if got := Format(set.Link(callee)); got != want {
				t.Errorf("%s: link to %s %q, want %q", tt.self, callee, got, want)
			}
		}
		if again, _ := v.Verify(tok); again != set {
			t.Errorf("%s: a token verified twice was checked twice", tt.self)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	key, other := newKey(t), newKey(t)
	s := NewSigner(key)
	v, err := NewVerifier(s.PublicKey(), "ratings")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := s.Faults(mustParse(t, "ratings:abort"), time.Minute)
	forged, _ := NewSigner(other).Faults(mustParse(t, "ratings:abort"), time.Minute)
	ftok, _ := s.Faults(mustParse(t, "ratings:abort"), time.Minute)
	rule, _ := s.Experiment("x", BySubject, 0.1, ftok, time.Minute)
	parts := strings.Split(good, ".")
	payload := strings.Replace(parts[1], parts[1][:4], "eyJh", 1) // another payload, same signature
	expired := func() string {
		c := claims{Use: useFault, Faults: "ratings:abort", RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer,
			IssuedAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}}
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
		return tok
	}()
	tooLong := func() string {
		c := claims{Use: useFault, Faults: "ratings:abort", RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer,
			IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(48 * time.Hour))}}
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
		return tok
	}()
	unsigned := func() string {
		c := claims{Use: useFault, Faults: "ratings:abort", RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer,
			IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return tok
	}()
	for name, tok := range map[string]string{
		"plain fault description": "ratings:abort",
		"another key":             forged,
		"tampered":                parts[0] + "." + payload + "." + parts[2],
		"expired":                 expired,
		"valid for 48h":           tooLong,
		"alg none":                unsigned,
		"an experiment token":     rule,
		"empty":                   "",
		"huge":                    strings.Repeat("a", 5000),
	} {
		if _, err := v.Verify(tok); !errors.Is(err, ErrToken) {
			t.Errorf("%s: Verify = %v, want ErrToken", name, err)
		}
	}
	if _, err := v.Verify(good); err != nil {
		t.Errorf("the good token: %v", err)
	}
	var none *Verifier
	if _, err := none.Verify(good); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil Verifier: %v, want ErrNoKey", err)
	}
	if v, err := NewVerifier("", "x"); v != nil || err != nil {
		t.Errorf("no key: %v %v, want a nil Verifier", v, err)
	}
	if _, err := NewVerifier("c2hvcnQ=", "x"); err == nil {
		t.Error("a short key was accepted")
	}
	if _, err := s.Faults(mustParse(t, "ratings:abort"), 25*time.Hour); err == nil {
		t.Error("signed a token for 25h")
	}
}

func TestExperimentToken(t *testing.T) {
	s := NewSigner(newKey(t))
	ftok, _ := s.Faults(mustParse(t, "ratings:delay=300ms"), time.Minute)
	tok, err := s.Experiment("ratings-latency", ByRequest, 0.1, ftok, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(s.PublicKey(), "gateway")
	e, err := v.VerifyExperiment(tok)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "ratings-latency" || e.By != ByRequest || e.Share != 0.1 || e.Faults.Token() != ftok {
		t.Errorf("experiment %+v", e)
	}
	if _, err := v.VerifyExperiment(ftok); !errors.Is(err, ErrToken) {
		t.Errorf("a fault token taken as an experiment: %v", err)
	}
	bad, _ := NewSigner(newKey(t)).Faults(mustParse(t, "ratings:abort"), time.Minute)
	inner, _ := s.Experiment("x", ByRequest, 0.1, bad, time.Minute)
	if _, err := v.VerifyExperiment(inner); !errors.Is(err, ErrToken) {
		t.Errorf("an experiment carrying a forged fault token: %v", err)
	}
	for _, tt := range []struct {
		name, by string
		share    float64
	}{{"", ByRequest, 0.1}, {"x", "user", 0.1}, {"x", ByRequest, 0}, {"x", ByRequest, 0.6}} {
		if _, err := s.Experiment(tt.name, tt.by, tt.share, ftok, time.Minute); err == nil {
			t.Errorf("Experiment(%q, %q, %v) was signed", tt.name, tt.by, tt.share)
		}
	}

	// Each cohort gets about its share, and a key always the same cohort.
	counts := map[string]int{}
	const n = 100_000
	for i := range n {
		key := fmt.Sprint("req-", i)
		c := e.Cohort(key)
		if e.Cohort(key) != c {
			t.Fatalf("key %s changed cohort", key)
		}
		counts[c]++
	}
	for _, c := range []string{CohortControl, CohortExperiment} {
		if share := float64(counts[c]) / n; share < 0.09 || share > 0.11 {
			t.Errorf("cohort %s got %.3f of requests, want about 0.1", c, share)
		}
	}
	if e.Cohort("") != "" {
		t.Error("a request without a key joined a cohort")
	}
}

func TestProfileToken(t *testing.T) {
	s := NewSigner(newKey(t))
	v, err := NewVerifier(s.PublicKey(), "ratings")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Profile("ratings", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if exp, err := v.VerifyProfile(tok); err != nil || time.Until(exp) < 59*time.Second || time.Until(exp) > time.Minute {
		t.Errorf("the profile token for ratings: expires %v, %v", exp, err)
	}
	forCatalog, _ := s.Profile("catalog", time.Minute)
	fault, _ := s.Faults(mustParse(t, "ratings:abort"), time.Minute)
	forged, _ := NewSigner(newKey(t)).Profile("ratings", time.Minute)
	for name, bad := range map[string]string{"another service's": forCatalog, "a fault token": fault, "another key's": forged, "empty": ""} {
		if _, err := v.VerifyProfile(bad); !errors.Is(err, ErrToken) {
			t.Errorf("%s: VerifyProfile = %v, want ErrToken", name, err)
		}
	}
	// A profile token does not inject faults either.
	if _, err := v.Verify(tok); !errors.Is(err, ErrToken) {
		t.Errorf("Verify(profile token) = %v, want ErrToken", err)
	}
	var none *Verifier
	if _, err := none.VerifyProfile(tok); !errors.Is(err, ErrNoKey) {
		t.Errorf("nil Verifier: %v, want ErrNoKey", err)
	}
	if _, err := s.Profile("", time.Minute); err == nil {
		t.Error("signed a profile token for no service")
	}
}
