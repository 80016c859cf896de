// Package identitytest gives tests the end users of a Shoal system without
// certificate files or mutual TLS: a system with a CA of its own whose
// gateway mints user tokens (identity.TokenIssuer) and whose services
// verify them (identity.TokenVerifier, identity.Guard), as they do in
// production. Code that reads identity.UserFrom can then be tested with
// real tokens.
package identitytest

import (
	"fmt"

	"github.com/shoal-dev/shoal/identity"
)

// Users mints and verifies the user tokens of one system. Its fields are
// safe for concurrent use.
type Users struct {
	// Issuer mints tokens as the system's gateway does.
	Issuer *identity.TokenIssuer
	// Verifier accepts exactly the Issuer's tokens, as the system's
	// services do.
	Verifier *identity.TokenVerifier
	// Gateway is the issuer's identity (spiffe://<system>/<gateway>).
	Gateway identity.ID
}

// NewUsers makes a system named system, with a CA of its own and a
// certificate for the service gateway, which signs the tokens. Its
// certificates live for the default lifetimes (a CA a year, a service 24 h),
// far beyond a test.
func NewUsers(system, gateway string) (*Users, error) {
	ca, err := identity.NewCA(system, 0)
	if err != nil {
		return nil, err
	}
	bundle, err := identity.NewBundle(ca.Cert)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(gateway, 0)
	if err != nil {
		return nil, err
	}
	creds, err := identity.NewCredentials(cert.TLS(), bundle)
	if err != nil {
		return nil, err
	}
	src := identity.NewSource(creds)
	u := &Users{Gateway: creds.ID}
	if u.Issuer, err = identity.NewTokenIssuer(src, 0); err != nil {
		return nil, err
	}
	if u.Verifier, err = identity.NewTokenVerifier(src, gateway); err != nil {
		return nil, err
	}
	return u, nil
}

// Token returns a token for subject, verified by the method auth ("jwt",
// "api_key:<name>", as the gateway says).
func (u *Users) Token(subject, auth string) (string, error) {
	tok, err := u.Issuer.Token(subject, auth)
	if err != nil {
		return "", fmt.Errorf("identitytest: %w", err)
	}
	return tok, nil
}

// Guard returns the Guard a service named service of the system puts in
// front of its handler: no Policy (the gateway may call it), and the
// Verifier for user tokens.
func (u *Users) Guard(service string) *identity.Guard {
	return &identity.Guard{Self: identity.ID{TrustDomain: u.Gateway.TrustDomain, Service: service}, Tokens: u.Verifier}
}
