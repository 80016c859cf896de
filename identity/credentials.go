package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Credentials are one process's identity at one moment: its certificate and
// key, the identity the certificate carries, and the CAs it trusts. They are
// immutable; a [Source] replaces them as a whole when the files are renewed.
type Credentials struct {
	ID     ID
	Cert   tls.Certificate // Leaf is set
	Bundle *Bundle

	server *tls.Config // built once: GetConfigForClient hands it out per handshake
	client *tls.Config // cloned per dial with the service wanted
}

// NewCredentials checks that cert chains to bundle, is valid now, carries a
// service identity of the bundle's system and may be used both to serve and
// to call, and returns the credentials.
func NewCredentials(cert tls.Certificate, bundle *Bundle) (*Credentials, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("identity: credentials without a certificate")
	}
	if bundle == nil {
		return nil, errors.New("identity: credentials without a CA bundle")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		cert.Leaf = leaf
	}
	id, err := bundle.Verify(leaf, time.Now())
	if err != nil {
		return nil, err
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.ExtKeyUsage, u) {
			return nil, fmt.Errorf("identity: certificate of %s cannot be used for both server and client authentication", id)
		}
	}
	c := &Credentials{ID: id, Cert: cert, Bundle: bundle}
	c.server = c.serverConfig()
	c.client = c.clientConfig()
	return c, nil
}

// serverConfig: TLS 1.3 only (every current stack has it, and its
// resumption is what keeps reconnects cheap), the caller must present a
// certificate that chains to the bundle, and VerifyConnection, which also
// runs on resumed sessions, checks it is of this system. ALPN offers only
// HTTP/1.1, the wire format between Shoal services: the config is chosen per
// handshake, so it cannot know whether the http.Server it serves enabled
// HTTP/2, and negotiating h2 with a server that did not would break the
// connection.
func (c *Credentials) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.Bundle.pool,
		NextProtos:   []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoPeerIdentity
			}
			_, err := c.Bundle.identify(cs.PeerCertificates[0])
			return err
		},
	}
}

// clientConfig is the part of a client config common to every service.
func (c *Credentials) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Cert},
		RootCAs:      c.Bundle.pool,
		NextProtos:   []string{"http/1.1"},
	}
}

// clientFor returns a client config that accepts only a server proving it
// is service: ServerName is the service name, so standard verification
// checks the chain and the DNS SAN, and VerifyConnection (which also runs
// on resumed sessions) checks the SPIFFE ID exactly.
func (c *Credentials) clientFor(service string, sessions tls.ClientSessionCache) *tls.Config {
	want := ID{TrustDomain: c.ID.TrustDomain, Service: service}
	cfg := c.client.Clone()
	cfg.ServerName = service
	cfg.ClientSessionCache = sessions
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return ErrNoPeerIdentity
		}
		got, err := c.Bundle.identify(cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("identity: reached %s, want %s", got, want)
		}
		return nil
	}
	return cfg
}
