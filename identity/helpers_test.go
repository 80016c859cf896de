package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

func newCA(t testing.TB, system string) *CA {
	t.Helper()
	ca, err := NewCA(system, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func bundleOf(t testing.TB, cas ...*CA) *Bundle {
	t.Helper()
	var certs []*x509.Certificate
	for _, ca := range cas {
		certs = append(certs, ca.Cert)
	}
	b, err := NewBundle(certs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func issue(t testing.TB, ca *CA, service string) *Certificate {
	t.Helper()
	c, err := ca.Issue(service, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// credsOf issues a certificate for service and returns credentials trusting
// bundle.
func credsOf(t testing.TB, ca *CA, service string, bundle *Bundle) *Credentials {
	t.Helper()
	c, err := NewCredentials(issue(t, ca, service).TLS(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// forge signs, with ca's key, a certificate the CA's Issue would never
// produce: an arbitrary URI SAN, DNS name and validity.
func forge(t testing.TB, ca *CA, uri, dns string, notBefore, notAfter time.Time) *Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dns},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{dns},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Certificate{Leaf: leaf, Key: key}
}

// writeFiles writes c and bundle under dir and returns their Files.
func writeFiles(t testing.TB, dir string, c *Certificate, bundle *Bundle) Files {
	t.Helper()
	f := Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Bundle: filepath.Join(dir, "bundle.pem")}
	if err := c.WriteFiles(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(f.Bundle, bundle.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
