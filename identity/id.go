package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// scheme is the SPIFFE URI scheme. An identity is spiffe://<system>/<service>.
const scheme = "spiffe"

// Name limits. A service name is also the certificate's DNS name and the TLS
// ServerName the client asks for, so it follows DNS label rules; a system
// name is a SPIFFE trust domain.
const (
	maxServiceLen     = 63
	maxTrustDomainLen = 255
)

// ID is a workload identity in the SPIFFE naming model: the system (the
// SPIFFE trust domain, one per CA) and the service within it. Every instance
// of a service has the same ID; instances are told apart by their
// certificates, not their names.
type ID struct {
	TrustDomain string // the system's name, e.g. "flix"
	Service     string // e.g. "profiles"
}

// NewID returns the ID of service in system, or an error naming the part
// that is not a valid name (see [CheckService] and [CheckTrustDomain]).
func NewID(system, service string) (ID, error) {
	if err := CheckTrustDomain(system); err != nil {
		return ID{}, err
	}
	if err := CheckService(service); err != nil {
		return ID{}, err
	}
	return ID{TrustDomain: system, Service: service}, nil
}

// ParseID parses "spiffe://<system>/<service>". It accepts exactly what
// [ID.String] produces: no port, user, query, fragment, percent-encoding or
// further path segments.
func ParseID(s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, scheme+"://")
	if !ok {
		return ID{}, fmt.Errorf("identity: %q is not a spiffe:// ID", s)
	}
	td, svc, ok := strings.Cut(rest, "/")
	if !ok {
		return ID{}, fmt.Errorf("identity: %q has no service path (want spiffe://<system>/<service>)", s)
	}
	id, err := NewID(td, svc)
	if err != nil {
		return ID{}, fmt.Errorf("identity: ID %q: %w", s, err)
	}
	return id, nil
}

// String returns "spiffe://<system>/<service>".
func (id ID) String() string { return scheme + "://" + id.TrustDomain + "/" + id.Service }

// IsZero reports whether id is the zero ID (no identity).
func (id ID) IsZero() bool { return id == ID{} }

// URL returns the ID as a URL, the form a certificate's URI SAN takes.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: scheme, Host: id.TrustDomain, Path: "/" + id.Service}
}

// SystemID returns "spiffe://<system>": the CA's own URI SAN, and the
// audience of a user token valid at every service of the system.
func SystemID(system string) string { return scheme + "://" + system }

// CheckService reports whether name can be a service's identity: 1 to 63
// characters of lowercase letters, digits, '-', '_' and '.', where every
// dot-separated label is non-empty and does not start with '-', and the
// whole is not an IP address. Lowercase only: DNS names (which TLS matches)
// ignore case while SPIFFE IDs do not, so mixed case would let two
// services look alike to one check and different to the other.
func CheckService(name string) error {
	if err := checkLabels(name, maxServiceLen); err != nil {
		return fmt.Errorf("service name %q: %w", name, err)
	}
	return nil
}

// CheckTrustDomain reports whether name can be a system's name (its SPIFFE
// trust domain): the same rules as [CheckService], up to 255 characters.
func CheckTrustDomain(name string) error {
	if err := checkLabels(name, maxTrustDomainLen); err != nil {
		return fmt.Errorf("system name %q: %w", name, err)
	}
	return nil
}

func checkLabels(name string, maxLen int) error {
	if name == "" || len(name) > maxLen {
		return fmt.Errorf("must be 1 to %d characters", maxLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("has an empty dot-separated label")
		}
		if label[0] == '-' {
			return errors.New("has a label starting with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("has %q: want lowercase letters, digits, '-', '_' and '.'", c)
			}
		}
	}
	if net.ParseIP(name) != nil {
		return errors.New("is an IP address")
	}
	return nil
}

// idFromCert returns the service identity a certificate carries: exactly one
// URI SAN, spiffe://<system>/<service>. It reads the URL x509 parsed, field
// by field, so that identifying a peer on every request does not allocate.
func idFromCert(c *x509.Certificate) (ID, error) {
	if len(c.URIs) != 1 {
		return ID{}, fmt.Errorf("identity: certificate %q has %d URI SANs, want one spiffe:// ID", c.Subject.CommonName, len(c.URIs))
	}
	u := c.URIs[0]
	svc, ok := strings.CutPrefix(u.Path, "/")
	if u.Scheme != scheme || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.RawPath != "" || u.ForceQuery || !ok {
		return ID{}, fmt.Errorf("identity: certificate URI SAN %q is not spiffe://<system>/<service>", u.Redacted())
	}
	id, err := NewID(u.Host, svc)
	if err != nil {
		return ID{}, fmt.Errorf("identity: certificate URI SAN %q: %w", u.Redacted(), err)
	}
	return id, nil
}

// trustDomainFromCA returns the system a CA certificate belongs to: its one
// URI SAN, spiffe://<system>.
func trustDomainFromCA(c *x509.Certificate) (string, error) {
	if len(c.URIs) != 1 {
		return "", fmt.Errorf("identity: CA certificate %q has %d URI SANs, want one spiffe://<system>", c.Subject.CommonName, len(c.URIs))
	}
	u := c.URIs[0]
	if u.Scheme != scheme || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != "" {
		return "", fmt.Errorf("identity: CA certificate URI SAN %q is not spiffe://<system>", u.Redacted())
	}
	if err := CheckTrustDomain(u.Host); err != nil {
		return "", fmt.Errorf("identity: CA certificate: %w", err)
	}
	return u.Host, nil
}
