// Package testfault signs fault tokens (package chaos) for tests that
// inject faults through the Shoal-Fault header.
package testfault

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
)

// NewSigner returns a signer with a fresh Ed25519 key: a test operator's,
// whose public key (Signer.PublicKey) the services under test trust. It
// fails tb if no key can be made.
func NewSigner(tb testing.TB) *chaos.Signer {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return chaos.NewSigner(key)
}

// Token returns s's token, valid for a minute, for the faults of spec, in
// the syntax of chaos.Parse. It fails tb if spec does not parse or the
// token cannot be signed.
func Token(tb testing.TB, s *chaos.Signer, spec string) string {
	tb.Helper()
	faults, err := chaos.Parse(spec)
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := s.Faults(faults, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}
