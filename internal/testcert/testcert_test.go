package testcert

import (
	"crypto/tls"
	"testing"
)

// The files load as a key pair, and the certificate is for 127.0.0.1.
func TestSelfSigned(t *testing.T) {
	certFile, keyFile, cert := SelfSigned(t, t.TempDir(), "a-")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
}
