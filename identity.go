package shoal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/shoal-dev/shoal/identity"
)

// Identity is an instance's service identity and the rules its callers
// meet (package identity has the machinery; docs/ARCHITECTURE.md, "Security
// model", the whole picture). With Files set:
//
//   - the listener serves mutual TLS only: a caller must present a
//     certificate of the system's CA, and the instance presents its own,
//     which names its service (spiffe://<system>/<service>);
//   - every request passes an identity.Guard before admission control and
//     the handler: it must come from a service the Policy allows, or carry
//     a valid user token (Shoal-User-Token) from one of TokenIssuers, else
//     it is answered 401 or 403. Handlers read who called with
//     identity.CallerFrom and for whom with identity.UserFrom;
//   - every call the client makes is mutual TLS to an instance that proves
//     it is the service asked for, and carries the user token of the
//     request being served, if any.
//
// Without Files (library use, tests, a program run by hand), the instance
// serves and calls plain HTTP, trusts every caller, and logs so at start.
type Identity struct {
	// Files are the instance's certificate, key and CA bundle
	// (SHOAL_IDENTITY_CERT, SHOAL_IDENTITY_KEY, SHOAL_IDENTITY_BUNDLE;
	// shoal up sets them). They are re-read when they change, so renewed
	// certificates and a rotated CA apply without a restart.
	Files identity.Files `json:"files" yaml:"files"`
	// Policy says which services may call which (SHOAL_POLICY, as JSON:
	// {"allow": {"ratings": ["api", "gateway"]}}; shoal up sets it from
	// the manifest's authorization:). Nil: any service of the system.
	Policy *identity.Policy `json:"policy" yaml:"policy"`
	// TokenIssuers are the services whose user tokens are accepted
	// (SHOAL_TOKEN_ISSUERS, comma-separated); default gateway.
	TokenIssuers []string `json:"token_issuers" yaml:"token_issuers"`
	// Plaintext lists the services called over plain HTTP all the same
	// (SHOAL_PLAINTEXT_SERVICES, comma-separated; shoal up sets it from
	// the manifest's plaintext: true): programs that cannot serve TLS.
	Plaintext []string `json:"plaintext" yaml:"plaintext"`
	// Edge marks the system's front door (the gateway): its listener
	// serves the outside world, so it asks for no client certificate and
	// has no Guard (the gateway authenticates end users itself); its
	// identity makes its calls mutual TLS and signs user tokens.
	Edge bool `json:"edge" yaml:"edge"`
}

// Environment variables of Identity besides identity's file variables.
const (
	EnvPolicy       = "SHOAL_POLICY"
	EnvTokenIssuers = "SHOAL_TOKEN_ISSUERS"
	EnvPlaintext    = "SHOAL_PLAINTEXT_SERVICES"
)

// DefaultTokenIssuer is the service whose user tokens are accepted when
// Identity.TokenIssuers names none.
const DefaultTokenIssuer = "gateway"

func (id *Identity) fromEnv(getenv func(string) string) error {
	files, err := identity.FilesFromEnv(getenv)
	if err != nil {
		return err
	}
	if !files.IsZero() {
		id.Files = files
	}
	if v := getenv(EnvPolicy); v != "" {
		var p identity.Policy
		dec := json.NewDecoder(bytes.NewReader([]byte(v)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("%s: want {\"allow\": {\"<callee>\": [\"<caller>\", ...]}}: %w", EnvPolicy, err)
		}
		id.Policy = &p
	}
	if v := getenv(EnvTokenIssuers); v != "" {
		id.TokenIssuers = splitList(v)
	}
	if v := getenv(EnvPlaintext); v != "" {
		id.Plaintext = splitList(v)
	}
	return nil
}

// validate reports what cannot work; edgeTLS says the instance has a TLS
// certificate of its own for the outside.
func (id Identity) validate(edgeTLS bool) error {
	var errs []error
	if err := id.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, s := range id.TokenIssuers {
		if err := identity.CheckService(s); err != nil {
			errs = append(errs, fmt.Errorf("identity.token_issuers: %w", err))
		}
	}
	for _, s := range id.Plaintext {
		if err := identity.CheckService(s); err != nil {
			errs = append(errs, fmt.Errorf("identity.plaintext: %w", err))
		}
	}
	if edgeTLS && !id.Files.IsZero() && !id.Edge {
		errs = append(errs, errors.New("tls_cert_file is for the edge (identity.edge, the gateway): a service with an identity already serves mutual TLS with its certificate"))
	}
	return errors.Join(errs...)
}

// serviceIdentity is what New builds from Config.Identity: nil fields when the
// instance has none.
type serviceIdentity struct {
	src   *identity.Source
	guard *identity.Guard // nil at the edge
}

// loadIdentity reads the identity files of cfg (after defaults, validated)
// and checks that the certificate names this service.
func loadIdentity(cfg Config) (serviceIdentity, error) {
	id := cfg.Identity
	if id.Files.IsZero() {
		return serviceIdentity{}, nil
	}
	src, err := identity.LoadSource(id.Files, cfg.Logger.With("service", cfg.Name, "instance", cfg.ID))
	if err != nil {
		return serviceIdentity{}, err
	}
	self := src.Credentials().ID
	if self.Service != cfg.Name {
		return serviceIdentity{}, fmt.Errorf("identity: the certificate in %s is for %s, not for service %q", id.Files.Cert, self, cfg.Name)
	}
	si := serviceIdentity{src: src}
	if id.Edge {
		return si, nil
	}
	issuers := id.TokenIssuers
	if len(issuers) == 0 {
		issuers = []string{DefaultTokenIssuer}
	}
	tokens, err := identity.NewTokenVerifier(src, issuers...)
	if err != nil {
		return serviceIdentity{}, err
	}
	si.guard = &identity.Guard{Self: self, Policy: id.Policy, Tokens: tokens,
		Deny: func(w http.ResponseWriter, _ *http.Request, status int, code, msg string) {
			WriteError(w, status, code, msg)
		}}
	return si, nil
}

// Identity returns the instance's identity source (its current certificate
// and trusted CAs, kept fresh while Run runs), or nil when it has none. The
// gateway mints user tokens with it (identity.NewTokenIssuer).
func (s *Service) Identity() *identity.Source { return s.id.src }

// describeIdentity is what the start log says of the instance's identity.
func (s *Service) describeIdentity() string {
	switch {
	case s.id.src == nil:
		return "none"
	case s.cfg.Identity.Edge:
		return s.id.src.Credentials().ID.String() + " (edge: callers unauthenticated)"
	}
	return s.id.src.Credentials().ID.String()
}

// warnPlaintext logs, once at start, that an instance without identity
// trusts whoever reaches it.
func (s *Service) warnPlaintext() {
	if s.id.src != nil {
		return
	}
	s.log.Warn("no service identity (" + identity.EnvCert + " and the others unset): serving and calling plain HTTP, " +
		"and any process that reaches this instance may call it; shoal up gives every instance a certificate")
}
