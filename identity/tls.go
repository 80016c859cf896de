package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrNoPeerIdentity means a connection carries no verified certificate.
var ErrNoPeerIdentity = errors.New("identity: no verified peer certificate")

// ServerConfig returns the TLS configuration of a service's listener: it
// presents src's current certificate, requires every caller to present one
// that chains to src's current bundle and belongs to the same system, and
// speaks TLS 1.3 with HTTP/1.1. Each handshake picks up the credentials src
// holds at that moment, so a renewed certificate or a rotated bundle applies
// to new connections without a restart. Session tickets survive renewals
// (they are keyed by this outer config), and on resumption Go checks again
// that the caller's chain is trusted and unexpired.
//
// Use it as http.Server.TLSConfig and serve with ServeTLS(ln, "", "").
// Handlers learn the caller with [PeerFromRequest], or from the context
// [Guard] fills in.
func ServerConfig(src *Source) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return src.Credentials().server, nil
		},
	}
}

// PeerID returns the verified identity of a TLS connection's peer. It is
// ErrNoPeerIdentity if the peer presented no certificate that was verified
// (a plain connection, or a server that did not require one).
func PeerID(cs *tls.ConnectionState) (ID, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return ID{}, ErrNoPeerIdentity
	}
	return idFromCert(cs.PeerCertificates[0])
}

// PeerFromRequest returns the verified identity of the service that sent r.
func PeerFromRequest(r *http.Request) (ID, error) { return PeerID(r.TLS) }

// Dialer opens mutual-TLS connections to instances of named services and
// refuses any instance that cannot prove it is the service asked for.
//
// The service wanted must reach the handshake, and a connection verified for
// one service must never carry a request for another. The first is done by
// setting tls.Config.ServerName to the service name (every certificate has
// its service as DNS SAN) and checking the SPIFFE ID in VerifyConnection.
// The second needs care, because http.Transport pools connections by
// scheme and address only: if one Transport served every service, a
// connection verified as catalog at 10.0.0.5:8080 would be reused for a
// request to profiles whose (forged or stale) record points at the same
// address. So the client uses one http.Transport per called service, each
// with DialTLSContext set to [Dialer.ForService] for its service: pools,
// and therefore connection reuse, are per service.
//
// All services share the Dialer's TLS session cache, keyed by address and
// service, so reconnecting to an instance resumes its session (no
// certificate signing or verification) instead of a full handshake. A
// Dialer is safe for concurrent use.
type Dialer struct {
	src      *Source
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	sessions tls.ClientSessionCache
}

// sessionCacheSize bounds the client's TLS session cache: one entry per
// instance called recently, ample for a system of a few hundred instances.
const sessionCacheSize = 1024

// NewDialer returns a Dialer presenting src's current certificate and
// trusting its current bundle. dial opens the underlying connection; nil
// means a net.Dialer with a 5 s timeout and 30 s keep-alives.
func NewDialer(src *Source, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Dialer {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return &Dialer{src: src, dial: dial, sessions: tls.NewLRUClientSessionCache(sessionCacheSize)}
}

// DialService connects to addr and completes a TLS handshake that succeeds
// only if the server there proves it is service (in the same system), with
// this process's certificate as client certificate.
func (d *Dialer) DialService(ctx context.Context, network, addr, service string) (*tls.Conn, error) {
	if err := CheckService(service); err != nil {
		return nil, fmt.Errorf("identity: dial %s: %w", addr, err)
	}
	raw, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.src.Credentials().clientFor(service, addrSessions{d.sessions, addr + "/"})
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("identity: TLS handshake with %s at %s: %w", service, addr, err)
	}
	return conn, nil
}

// ForService returns a dial function for http.Transport.DialTLSContext that
// connects to instances of service (requests use https:// URLs with the
// instance's address as host).
func (d *Dialer) ForService(service string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialService(ctx, network, addr, service)
	}
}

// addrSessions scopes a shared session cache to one address. Go keys
// client sessions by ServerName, which is the service name here: without
// the address, instances of one service would overwrite each other's
// tickets, and every reconnect would present a ticket the instance cannot
// decrypt.
type addrSessions struct {
	cache  tls.ClientSessionCache
	prefix string
}

func (a addrSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return a.cache.Get(a.prefix + key)
}

func (a addrSessions) Put(key string, cs *tls.ClientSessionState) { a.cache.Put(a.prefix+key, cs) }
