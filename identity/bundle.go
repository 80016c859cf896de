package identity

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Bundle is the set of CAs a process trusts: normally one, two while a CA
// rotation overlaps (certificates of the old CA and of the new one are both
// accepted). Every CA of a bundle belongs to the same system. A Bundle is
// immutable.
type Bundle struct {
	system string
	cas    []*x509.Certificate
	pool   *x509.CertPool
}

// NewBundle returns a bundle of the given CA certificates (at least one, all
// of one system).
func NewBundle(cas ...*x509.Certificate) (*Bundle, error) {
	if len(cas) == 0 {
		return nil, errors.New("identity: empty CA bundle")
	}
	b := &Bundle{pool: x509.NewCertPool()}
	for i, c := range cas {
		if !c.IsCA || !c.BasicConstraintsValid {
			return nil, fmt.Errorf("identity: bundle certificate %d (%q) is not a CA", i, c.Subject.CommonName)
		}
		system, err := trustDomainFromCA(c)
		if err != nil {
			return nil, err
		}
		if b.system != "" && system != b.system {
			return nil, fmt.Errorf("identity: bundle mixes systems %q and %q", b.system, system)
		}
		b.system = system
		b.cas = append(b.cas, c)
		b.pool.AddCert(c)
	}
	return b, nil
}

// ParseBundle reads a bundle from PEM: one or more CERTIFICATE blocks.
func ParseBundle(pemData []byte) (*Bundle, error) {
	cas, err := parseCertsPEM(pemData)
	if err != nil {
		return nil, fmt.Errorf("identity: CA bundle: %w", err)
	}
	return NewBundle(cas...)
}

// System returns the trust domain of the bundle's CAs.
func (b *Bundle) System() string { return b.system }

// CAs returns the bundle's CA certificates, in order.
func (b *Bundle) CAs() []*x509.Certificate { return slices.Clone(b.cas) }

// PEM returns the bundle in PEM, one block per CA.
func (b *Bundle) PEM() []byte {
	var buf bytes.Buffer
	for _, c := range b.cas {
		buf.Write(pemCert(c.Raw))
	}
	return buf.Bytes()
}

// Verify checks that leaf chains to one of the bundle's CAs at time now and
// returns the identity it carries, which must be in the bundle's system.
// The error says why not: expired, not yet valid, unknown CA, wrong system.
func (b *Bundle) Verify(leaf *x509.Certificate, now time.Time) (ID, error) {
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       b.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return ID{}, fmt.Errorf("identity: certificate %q: %w", leaf.Subject.CommonName, err)
	}
	return b.identify(leaf)
}

// identify returns the identity of a certificate already verified against
// this bundle, checking it belongs to the bundle's system.
func (b *Bundle) identify(leaf *x509.Certificate) (ID, error) {
	id, err := idFromCert(leaf)
	if err != nil {
		return ID{}, err
	}
	if id.TrustDomain != b.system {
		return ID{}, fmt.Errorf("identity: %s is not in system %q", id, b.system)
	}
	return id, nil
}
