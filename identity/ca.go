package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Validity defaults. Service certificates are short-lived so that a leaked
// key is useful for a day at most and no revocation machinery is needed;
// the supervisor renews them well before they expire (see [RenewAt]).
const (
	DefaultCertTTL    = 24 * time.Hour
	DefaultCAValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a peer whose clock is a little
	// behind the issuer's accepts a certificate issued just now.
	clockSkew = 5 * time.Minute
)

// CA is a system's certificate authority: it signs the certificates of the
// system's services. Keys are ECDSA P-256: Go's assembly P-256 signs and
// verifies about as fast as Ed25519 (tens of µs), and unlike Ed25519
// certificates it is accepted by every TLS stack a `command:` program may
// use (OpenSSL, Java, Node, Python, rustls) and by ES256, the JWT algorithm
// the user tokens use.
type CA struct {
	Cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	system string
}

// NewCA creates a CA for system, valid from now for validity (zero:
// DefaultCAValidity). Its certificate carries the URI SAN spiffe://<system>
// and a name constraint that limits the URI SANs it can sign to that trust
// domain, so that even a certificate it signed by mistake for another
// system's ID fails verification.
func NewCA(system string, validity time.Duration) (*CA, error) {
	if err := CheckTrustDomain(system); err != nil {
		return nil, fmt.Errorf("identity: new CA: %w", err)
	}
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Serial in the name: rotated CAs of one system must have distinct
		// subjects, or chain building could pick the wrong issuer.
		Subject:               pkix.Name{Organization: []string{"shoal"}, CommonName: fmt.Sprintf("%s CA %x", system, serial.Bytes()[:6])},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{{Scheme: scheme, Host: system}},
		PermittedURIDomains:   []string{system},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("identity: new CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: key, system: system}, nil
}

// ParseCA reads a CA from its PEM certificate and PKCS #8 PEM key, checking
// that they belong together and that the certificate is a Shoal CA.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("identity: CA certificate is not a CA (basic constraints)")
	}
	system, err := trustDomainFromCA(cert)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("identity: CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, key: key, system: system}, nil
}

// System returns the trust domain the CA signs for.
func (ca *CA) System() string { return ca.system }

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return pemCert(ca.Cert.Raw) }

// KeyPEM returns the CA's private key as PKCS #8 PEM. Keep it 0600.
func (ca *CA) KeyPEM() []byte { return pemKey(ca.key) }

// Certificate is a service certificate and its private key.
type Certificate struct {
	ID   ID
	Leaf *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue signs a new certificate, with a new key, for service in the CA's
// system, valid from now for ttl (zero: DefaultCertTTL), cut short to the
// CA's own expiry. It carries the URI SAN spiffe://<system>/<service> (the
// identity) and the DNS SAN <service> (so that a client setting ServerName
// to the service it wants gets standard hostname verification), for both
// server and client authentication: every instance is both.
func (ca *CA) Issue(service string, ttl time.Duration) (*Certificate, error) {
	if ttl <= 0 {
		ttl = DefaultCertTTL
	}
	now := time.Now()
	return ca.issue(service, now.Add(-clockSkew), now.Add(ttl))
}

func (ca *CA) issue(service string, notBefore, notAfter time.Time) (*Certificate, error) {
	id, err := NewID(ca.system, service)
	if err != nil {
		return nil, fmt.Errorf("identity: issue: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"shoal"}, CommonName: service},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{service},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("identity: issue %s: %w", id, err)
	}
	return &Certificate{ID: id, Leaf: leaf, Key: key}, nil
}

// CertPEM returns the certificate in PEM (the leaf only: peers have the CA
// in their bundle).
func (c *Certificate) CertPEM() []byte { return pemCert(c.Leaf.Raw) }

// KeyPEM returns the private key as PKCS #8 PEM.
func (c *Certificate) KeyPEM() []byte { return pemKey(c.Key) }

// TLS returns the certificate for a tls.Config, Leaf filled in.
func (c *Certificate) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Leaf.Raw}, PrivateKey: c.Key, Leaf: c.Leaf}
}

// RenewAt returns when a certificate should be replaced: once two thirds of
// its validity have passed, so that a renewal that fails (the supervisor is
// down, a disk is full) has a third of the lifetime, 8 h by default, to be
// retried before anything breaks.
func RenewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("identity: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil // positive, never zero
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(fmt.Sprintf("identity: marshal a P-256 key: %v", err)) // cannot fail for a P-256 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// parseCertPEM returns the one certificate in b.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	certs, err := parseCertsPEM(b)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%d certificates in the PEM data, want 1", len(certs))
	}
	return certs[0], nil
}

// parseCertsPEM returns every CERTIFICATE block of b, in order. Other block
// types are an error: a key pasted into a certificate file is a mistake
// worth reporting.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// parseKeyPEM returns the ECDSA P-256 key in b (PKCS #8, or SEC 1 "EC
// PRIVATE KEY" as openssl writes it).
func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("private key is %T, want ECDSA P-256", key)
	}
	return k, nil
}
