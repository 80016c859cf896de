package identity

import (
	"strings"
	"testing"
	"time"
)

// TestVerify: what a bundle accepts as a service certificate, and why it
// refuses the rest.
func TestVerify(t *testing.T) {
	flix := newCA(t, "flix")
	other := newCA(t, "other")
	next := newCA(t, "flix") // a rotated-in CA of the same system
	now := time.Now()

	tests := []struct {
		name    string
		cert    *Certificate
		bundle  *Bundle
		want    ID
		wantErr string
	}{
		{"issued", issue(t, flix, "profiles"), bundleOf(t, flix), ID{"flix", "profiles"}, ""},
		{"expired", forge(t, flix, "spiffe://flix/profiles", "profiles", now.Add(-2*time.Hour), now.Add(-time.Hour)), bundleOf(t, flix), ID{}, "expired"},
		{"not yet valid", forge(t, flix, "spiffe://flix/profiles", "profiles", now.Add(time.Hour), now.Add(2*time.Hour)), bundleOf(t, flix), ID{}, "not yet valid"},
		{"wrong CA", issue(t, other, "profiles"), bundleOf(t, flix), ID{}, "unknown authority"},
		// A CA that signs an ID of another trust domain (a bug, a stolen
		// key used carelessly) is stopped by its name constraint.
		{"wrong trust domain", forge(t, flix, "spiffe://other/profiles", "profiles", now.Add(-time.Minute), now.Add(time.Hour)), bundleOf(t, flix), ID{}, "constraint"},
		{"no SPIFFE ID", forge(t, flix, "https://flix/profiles", "profiles", now.Add(-time.Minute), now.Add(time.Hour)), bundleOf(t, flix), ID{}, "not spiffe://"},
		{"invalid service in ID", forge(t, flix, "spiffe://flix/Pro", "pro", now.Add(-time.Minute), now.Add(time.Hour)), bundleOf(t, flix), ID{}, "lowercase"},
		{"rotation: old CA's certificate", issue(t, flix, "ratings"), bundleOf(t, next, flix), ID{"flix", "ratings"}, ""},
		{"rotation: new CA's certificate", issue(t, next, "ratings"), bundleOf(t, next, flix), ID{"flix", "ratings"}, ""},
		{"rotation done: old CA pruned", issue(t, flix, "ratings"), bundleOf(t, next), ID{}, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.bundle.Verify(tt.cert.Leaf, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Verify = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				// Credentials refuse the same certificates.
				if _, err := NewCredentials(tt.cert.TLS(), tt.bundle); err == nil {
					t.Fatal("NewCredentials accepted it")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Verify = %v, %v; want %v", got, err, tt.want)
			}
			c, err := NewCredentials(tt.cert.TLS(), tt.bundle)
			if err != nil || c.ID != tt.want {
				t.Fatalf("NewCredentials = %v, %v", c, err)
			}
		})
	}
}

func TestIssuedCertificate(t *testing.T) {
	ca := newCA(t, "flix")
	c, err := ca.Issue("profiles", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 2*time.Hour+clockSkew {
		t.Errorf("validity %v, want 2h plus %v of clock skew", got, clockSkew)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "profiles" {
		t.Errorf("DNS SANs %v, want [profiles]", leaf.DNSNames)
	}
	if err := leaf.VerifyHostname("profiles"); err != nil {
		t.Errorf("VerifyHostname(profiles): %v", err)
	}
	if err := leaf.VerifyHostname("catalog"); err == nil {
		t.Error("VerifyHostname(catalog) passed")
	}
	if c.ID != (ID{"flix", "profiles"}) {
		t.Errorf("ID %v", c.ID)
	}
	if want := RenewAt(leaf); !want.Equal(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)) {
		t.Errorf("RenewAt %v", want)
	}

	// Never beyond the CA's own expiry.
	short, err := NewCA("flix", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	long, err := short.Issue("profiles", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !long.Leaf.NotAfter.Equal(short.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", long.Leaf.NotAfter, short.Cert.NotAfter)
	}

	for _, bad := range []string{"", "Profiles", "a/b", "1.2.3.4", "-x"} {
		if _, err := ca.Issue(bad, 0); err == nil {
			t.Errorf("Issue(%q) succeeded", bad)
		}
	}
	if _, err := NewCA("Not Valid", 0); err == nil {
		t.Error("NewCA accepted an invalid system name")
	}
}

func TestParseCA(t *testing.T) {
	ca := newCA(t, "flix")
	other := newCA(t, "flix")
	back, err := ParseCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) || back.System() != "flix" {
		t.Fatalf("ParseCA round trip: %v", back.Cert.Subject)
	}
	leaf := issue(t, ca, "x")
	tests := []struct {
		name      string
		cert, key []byte
		wantErr   string
	}{
		{"key of another CA", ca.CertPEM(), other.KeyPEM(), "does not match"},
		{"leaf as CA", leaf.CertPEM(), leaf.KeyPEM(), "not a CA"},
		{"no certificate", nil, ca.KeyPEM(), "no PEM certificate"},
		{"key in cert file", ca.KeyPEM(), ca.KeyPEM(), "unexpected PEM block"},
		{"no key", ca.CertPEM(), nil, "no PEM private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseCA(tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseCA = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBundle(t *testing.T) {
	a, b := newCA(t, "flix"), newCA(t, "flix")
	bundle := bundleOf(t, a, b)
	back, err := ParseBundle(bundle.PEM())
	if err != nil {
		t.Fatal(err)
	}
	if back.System() != "flix" || len(back.CAs()) != 2 || !back.CAs()[0].Equal(a.Cert) {
		t.Fatalf("ParseBundle round trip: %s, %d CAs", back.System(), len(back.CAs()))
	}
	if _, err := NewBundle(a.Cert, newCA(t, "other").Cert); err == nil || !strings.Contains(err.Error(), "mixes systems") {
		t.Errorf("a bundle of two systems: %v", err)
	}
	if _, err := NewBundle(issue(t, a, "x").Leaf); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a bundle of a leaf: %v", err)
	}
	if _, err := NewBundle(); err == nil {
		t.Error("an empty bundle")
	}
}
