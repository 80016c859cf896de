package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenAuthority(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "identity")
	a, err := OpenAuthority(dir, "flix")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, caKeyFile: 0o600, caCertFile: 0o644, bundleFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s/%s mode %v, want %v", dir, name, got, want)
		}
	}
	again, err := OpenAuthority(dir, "flix")
	if err != nil {
		t.Fatal(err)
	}
	if !again.CA().Cert.Equal(a.CA().Cert) || len(again.Bundle().CAs()) != 1 {
		t.Fatal("reopening created a different CA or bundle")
	}
	if _, err := OpenAuthority(dir, "other"); err == nil || !strings.Contains(err.Error(), `system "flix"`) {
		t.Errorf("opening flix's directory as other: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, caKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAuthority(dir, "flix"); err == nil || !strings.Contains(err.Error(), "CA key") {
		t.Errorf("a CA without its key must not be replaced silently: %v", err)
	}
}

func TestIssueFilesAndRenew(t *testing.T) {
	a, err := OpenAuthority(t.TempDir(), "flix")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "profiles-1")
	f, err := a.IssueFiles("profiles", dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != (ID{"flix", "profiles"}) {
		t.Fatalf("ID %v", c.ID)
	}
	if st, _ := os.Stat(f.Key); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}

	tests := []struct {
		name    string
		prepare func(t *testing.T)
		service string
		renewed bool
	}{
		{"fresh", func(*testing.T) {}, "profiles", false},
		{"another service", func(*testing.T) {}, "catalog", true},
		{"due", func(t *testing.T) {
			// 1 minute + 5 minutes of skew: two thirds are behind us.
			if _, err := a.IssueFiles("profiles", dir, time.Minute); err != nil {
				t.Fatal(err)
			}
		}, "profiles", true},
		{"key missing", func(t *testing.T) { os.Remove(f.Key) }, "profiles", true},
		{"garbage", func(t *testing.T) { os.WriteFile(f.Cert, []byte("junk"), 0o644) }, "profiles", true},
		{"from an untrusted CA", func(t *testing.T) {
			if err := issue(t, newCA(t, "flix"), "profiles").WriteFiles(f.Cert, f.Key); err != nil {
				t.Fatal(err)
			}
		}, "profiles", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.IssueFiles("profiles", dir, 0); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t)
			renewed, err := a.Renew(f, tt.service, 0)
			if err != nil || renewed != tt.renewed {
				t.Fatalf("Renew = %v, %v; want %v", renewed, err, tt.renewed)
			}
			c, err := LoadCredentials(f)
			if err != nil {
				t.Fatalf("after Renew: %v", err)
			}
			if c.ID.Service != tt.service && tt.renewed {
				t.Errorf("renewed for %s, want %s", c.ID.Service, tt.service)
			}
		})
	}
}

// TestRotation walks a CA rotation: certificates of the old and the new CA
// are accepted throughout the overlap, and the old CA's only after it is
// pruned no longer.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAuthority(dir, "flix")
	if err != nil {
		t.Fatal(err)
	}
	old := a.CA()
	oldCert, err := a.Issue("ratings", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err == nil {
		t.Error("Promote without a rotation succeeded")
	}
	if err := a.Rotate(0); err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(0); err == nil {
		t.Error("a second Rotate during a rotation succeeded")
	}
	if a.CA() != old {
		t.Fatal("Rotate changed the signing CA")
	}
	if n := len(a.Bundle().CAs()); n != 2 {
		t.Fatalf("bundle has %d CAs after Rotate, want 2", n)
	}
	// A restart during the rotation resumes it.
	a, err = OpenAuthority(dir, "flix")
	if err != nil {
		t.Fatal(err)
	}
	if a.next == nil || len(a.Bundle().CAs()) != 2 {
		t.Fatal("reopening lost the rotation under way")
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if a.CA().Cert.Equal(old.Cert) {
		t.Fatal("Promote kept the old CA signing")
	}
	newCert, err := a.Issue("ratings", 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	onDisk := func() *Bundle {
		t.Helper()
		b, err := os.ReadFile(a.BundlePath())
		if err != nil {
			t.Fatal(err)
		}
		bundle, err := ParseBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		return bundle
	}
	for _, c := range []*Certificate{oldCert, newCert} {
		if _, err := onDisk().Verify(c.Leaf, now); err != nil {
			t.Fatalf("during the overlap: %v", err)
		}
	}
	if n, err := a.Prune(DefaultCertTTL); err != nil || n != 0 {
		t.Fatalf("Prune right after Promote removed %d, %v; want 0", n, err)
	}
	// Pretend the promotion was a day and more ago.
	past := now.Add(-DefaultCertTTL - clockSkew - time.Minute)
	if err := os.Chtimes(filepath.Join(dir, caCertFile), past, past); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Prune(DefaultCertTTL); err != nil || n != 1 {
		t.Fatalf("Prune after the longest certificate lifetime removed %d, %v; want 1", n, err)
	}
	if _, err := onDisk().Verify(oldCert.Leaf, now); err == nil {
		t.Error("the pruned CA's certificate still verifies")
	}
	if _, err := onDisk().Verify(newCert.Leaf, now); err != nil {
		t.Errorf("the new CA's certificate: %v", err)
	}
}

// TestMaintain: a CA near its end is rotated, promoted after PromoteDelay,
// and the old one pruned once retired.
func TestMaintain(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenAuthority(dir, "flix")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Maintain(DefaultCertTTL); err != nil || a.next != nil {
		t.Fatalf("Maintain of a fresh CA: %v, rotation started: %v", err, a.next != nil)
	}
	// A CA with less than a fifth of its life left.
	ending, err := NewCA("flix", 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ending.Cert.NotBefore = ending.Cert.NotBefore.Add(-100 * 24 * time.Hour) // only read by Maintain
	a.ca = ending
	if err := a.Maintain(DefaultCertTTL); err != nil || a.next == nil {
		t.Fatalf("Maintain of an ending CA: %v, rotation started: %v", err, a.next != nil)
	}
	if err := a.Maintain(DefaultCertTTL); err != nil || a.next == nil {
		t.Fatalf("Maintain promoted before PromoteDelay: %v", err)
	}
	past := time.Now().Add(-PromoteDelay - time.Second)
	if err := os.Chtimes(filepath.Join(dir, nextCertFile), past, past); err != nil {
		t.Fatal(err)
	}
	next := a.next
	if err := a.Maintain(DefaultCertTTL); err != nil || a.next != nil || a.CA() != next {
		t.Fatalf("Maintain after PromoteDelay did not promote: %v", err)
	}
}
