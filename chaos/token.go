package chaos

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A fault token is a JWT (RFC 7519) signed EdDSA (Ed25519) with the
// operator's key, which only the operator holds (shoal up keeps it in
// .shoal/chaos.key, mode 0600). Services hold only the public half
// (SHOAL_FAULT_KEY), so none of them can make a token, and one that was
// broken into cannot inject faults into the others. Claims: iss
// "shoal-operator", iat, exp (at most 24 h after iat), jti, use ("fault",
// "experiment" or "profile") and what the use needs (below).

const (
	issuer       = "shoal-operator"
	maxTokenTTL  = 24 * time.Hour
	maxTokenLen  = 4 << 10
	tokenLeeway  = 5 * time.Second
	useFault     = "fault"
	useRule      = "experiment"
	useProfile   = "profile"
	verifiedKept = 256 // verified tokens a Verifier remembers
)

// Errors of Verify, VerifyExperiment and VerifyProfile, for errors.Is.
var (
	// ErrNoKey: the Verifier has no key, so no token is honoured.
	ErrNoKey = errors.New("chaos: no operator key configured: no fault, experiment or profile token is honoured")
	// ErrToken: the token is not one the operator signed, or has expired.
	ErrToken = errors.New("chaos: invalid operator token")
)

type claims struct {
	jwt.RegisteredClaims
	Use string `json:"use"`
	// use fault: the faults, in Parse's syntax.
	Faults string `json:"faults,omitempty"`
	// use experiment: a live-traffic experiment for gateways.
	Name  string  `json:"name,omitempty"`
	By    string  `json:"by,omitempty"`
	Share float64 `json:"share,omitempty"`
	Fault string  `json:"fault,omitempty"` // the experiment cohort's fault token
	// use profile: the service whose profiles it may read, in aud.
	// IssuedNano orders experiment tokens more finely than iat's
	// seconds: a gateway refuses one older than the experiment it runs.
	IssuedNano int64 `json:"iat_ns,omitempty"`
}

// Signer makes tokens with the operator's private key.
type Signer struct{ key ed25519.PrivateKey }

// NewSigner returns a Signer using key.
func NewSigner(key ed25519.PrivateKey) *Signer { return &Signer{key: key} }

// PublicKey is the verifying half of the Signer's key, as SHOAL_FAULT_KEY
// and NewVerifier take it.
func (s *Signer) PublicKey() string { return PublicKey(s.key) }

// Faults returns a token that makes faults apply, at their hops, to the
// requests that carry it in the Shoal-Fault header, for ttl (at most 24 h).
func (s *Signer) Faults(faults []Fault, ttl time.Duration) (string, error) {
	if len(faults) == 0 {
		return "", errors.New("chaos: no fault to sign")
	}
	// Parse again what was formatted: the token says exactly what a
	// verifier will read.
	spec := Format(faults)
	if _, err := Parse(spec); err != nil {
		return "", err
	}
	return s.sign(claims{Use: useFault, Faults: spec}, ttl)
}

// Experiment returns a token that tells gateways to put a share of their
// requests each into a control and an experiment cohort, by a hash of by
// ("subject": the authenticated caller, or "request": the request ID), and
// to send the experiment cohort's requests with faultToken. It is valid
// for ttl (at most 24 h), and so is the experiment.
func (s *Signer) Experiment(name, by string, share float64, faultToken string, ttl time.Duration) (string, error) {
	if err := checkRule(name, by, share); err != nil {
		return "", err
	}
	return s.sign(claims{Use: useRule, Name: name, By: by, Share: share, Fault: faultToken, IssuedNano: time.Now().UnixNano()}, ttl)
}

// Profile returns a token that lets its bearer read the profiles
// (net/http/pprof) of service's instances, on their admin listeners, for
// ttl (at most 24 h). The admin listener is plain HTTP, so the token can be
// seen on the way: keep ttl to the profiling window.
func (s *Signer) Profile(service string, ttl time.Duration) (string, error) {
	if service == "" {
		return "", errors.New("chaos: a profile token needs the service it is for")
	}
	c := claims{Use: useProfile}
	c.Audience = jwt.ClaimStrings{service}
	return s.sign(c, ttl)
}

func (s *Signer) sign(c claims, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > maxTokenTTL {
		return "", fmt.Errorf("chaos: token lifetime %v: want more than 0 and at most %v", ttl, maxTokenTTL)
	}
	now := time.Now()
	var id [8]byte
	_, _ = rand.Read(id[:])
	c.RegisteredClaims = jwt.RegisteredClaims{
		Issuer: issuer, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID: hex.EncodeToString(id[:]), Audience: c.Audience,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("chaos: signing: %w", err)
	}
	return tok, nil
}

func checkRule(name, by string, share float64) error {
	switch {
	case name == "" || len(name) > 64:
		return fmt.Errorf("chaos: experiment name %q: want 1 to 64 characters", name)
	case by != BySubject && by != ByRequest:
		return fmt.Errorf("chaos: cohorts by %q: want %s or %s", by, BySubject, ByRequest)
	case !(share > 0 && share <= 0.5):
		return fmt.Errorf("chaos: cohort share %v: want a fraction in (0, 0.5]", share)
	}
	return nil
}

// Verifier checks tokens against the operator's public key, for one
// service (self): the faults of a token it verifies are sorted into those
// for self's own hop and those for its links. Verified tokens are
// remembered until they expire, so a token on every request of an
// experiment costs one signature check per process. A nil *Verifier
// honours nothing. It is safe for concurrent use.
type Verifier struct {
	key    ed25519.PublicKey
	self   string
	parser *jwt.Parser

	mu   sync.Mutex
	sets map[string]*Set // by token
}

// NewVerifier returns a Verifier for the service self with the public
// key in the form PublicKey writes (SHOAL_FAULT_KEY). An empty key gives
// a nil Verifier: faults are then never honoured.
func NewVerifier(publicKey, self string) (*Verifier, error) {
	if publicKey == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("chaos: operator key %q: want %d bytes in base64, as shoal up sets SHOAL_FAULT_KEY", publicKey, ed25519.PublicKeySize)
	}
	return &Verifier{
		key: ed25519.PublicKey(raw), self: self, sets: map[string]*Set{},
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(tokenLeeway), jwt.WithStrictDecoding()),
	}, nil
}

// Verify returns the faults of a fault token, sorted for the Verifier's
// service. It fails with ErrNoKey (nil Verifier) or ErrToken.
func (v *Verifier) Verify(token string) (*Set, error) {
	if v == nil {
		return nil, ErrNoKey
	}
	now := time.Now()
	v.mu.Lock()
	set := v.sets[token]
	v.mu.Unlock()
	if set != nil && now.Before(set.expires) {
		return set, nil
	}
	c, err := v.parse(token, useFault)
	if err != nil {
		return nil, err
	}
	faults, err := Parse(c.Faults)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	set = newSet(token, faults, v.self, c.ExpiresAt.Time)
	v.remember(now, token, set)
	return set, nil
}

// VerifyProfile checks a profile token (Signer.Profile) for the
// Verifier's service and returns when it expires. It fails with ErrNoKey
// (nil Verifier) or ErrToken.
func (v *Verifier) VerifyProfile(token string) (expires time.Time, err error) {
	if v == nil {
		return time.Time{}, ErrNoKey
	}
	c, err := v.parse(token, useProfile)
	if err != nil {
		return time.Time{}, err
	}
	if !slices.Contains(c.Audience, v.self) {
		return time.Time{}, fmt.Errorf("%w: a profile token for %q, not %q", ErrToken, []string(c.Audience), v.self)
	}
	return c.ExpiresAt.Time, nil
}

// remember keeps set for token, first dropping expired entries, or if
// none has expired, all, when the cache is full.
func (v *Verifier) remember(now time.Time, token string, set *Set) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.sets) >= verifiedKept {
		for k, s := range v.sets {
			if !now.Before(s.expires) {
				delete(v.sets, k)
			}
		}
		if len(v.sets) >= verifiedKept {
			clear(v.sets)
		}
	}
	v.sets[token] = set
}

func (v *Verifier) parse(token, use string) (*claims, error) {
	if token == "" || len(token) > maxTokenLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrToken, len(token))
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	switch {
	case c.Use != use:
		return nil, fmt.Errorf("%w: a token for %q, not %q", ErrToken, c.Use, use)
	case c.IssuedAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > maxTokenTTL:
		return nil, fmt.Errorf("%w: valid for more than %v", ErrToken, maxTokenTTL)
	}
	return &c, nil
}

// Cohort names, and what assigns requests to them.
const (
	CohortControl    = "control"
	CohortExperiment = "experiment"
	// BySubject puts all the requests of one authenticated caller (the
	// gateway's verified subject) in the same cohort; requests without one
	// in none.
	BySubject = "subject"
	// ByRequest draws each request on its own, by its request ID.
	ByRequest = "request"
)

// Experiment is a live-traffic experiment as a gateway runs it: a share of
// requests in each cohort, and the faults of the experiment cohort.
type Experiment struct {
	Name    string
	By      string  // BySubject or ByRequest
	Share   float64 // of requests in each cohort
	Faults  *Set    // verified for the gateway that holds the experiment
	Issued  time.Time
	Expires time.Time
}

// VerifyExperiment checks an experiment token and the fault token inside.
func (v *Verifier) VerifyExperiment(token string) (*Experiment, error) {
	if v == nil {
		return nil, ErrNoKey
	}
	c, err := v.parse(token, useRule)
	if err != nil {
		return nil, err
	}
	if err := checkRule(c.Name, c.By, c.Share); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToken, err)
	}
	set, err := v.Verify(c.Fault)
	if err != nil {
		return nil, fmt.Errorf("the experiment's fault: %w", err)
	}
	return &Experiment{Name: c.Name, By: c.By, Share: c.Share, Faults: set,
		Issued: time.Unix(0, c.IssuedNano), Expires: c.ExpiresAt.Time}, nil
}

// Cohort returns the cohort of a request whose key (subject or request ID,
// as By says) is key: CohortControl, CohortExperiment, or "" for neither. The hash is
// salted with the experiment's name, so that two experiments pick
// different callers.
func (e *Experiment) Cohort(key string) string {
	if key == "" {
		return ""
	}
	h := fnv.New64a()
	h.Write([]byte(e.Name))
	h.Write([]byte{0})
	h.Write([]byte(key))
	const buckets = 1_000_000
	u := float64(h.Sum64()%buckets) / buckets
	switch {
	case u < e.Share:
		return CohortControl
	case u < 2*e.Share:
		return CohortExperiment
	}
	return ""
}
