package testfault

import (
	"testing"

	"github.com/shoal-dev/shoal/chaos"
)

// A token verifies with the signer's public key and carries spec's faults;
// another signer's does not verify.
func TestToken(t *testing.T) {
	s := NewSigner(t)
	v, err := chaos.NewVerifier(s.PublicKey(), "api")
	if err != nil {
		t.Fatal(err)
	}
	set, err := v.Verify(Token(t, s, "api>ratings:error=503"))
	if err != nil {
		t.Fatal(err)
	}
	if got := chaos.Format(set.Faults()); got != "api>ratings:error=503" {
		t.Errorf("faults %q, want api>ratings:error=503", got)
	}
	if _, err := v.Verify(Token(t, NewSigner(t), "api:abort")); err == nil {
		t.Error("another signer's token verified")
	}
}
