package identity

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Files of an [Authority]'s directory.
const (
	caCertFile     = "ca.pem"          // the signing CA
	caKeyFile      = "ca-key.pem"      // its key, 0600
	nextCertFile   = "next-ca.pem"     // a CA being rotated in: trusted, not signing yet
	nextKeyFile    = "next-ca-key.pem" // its key, 0600
	bundleFile     = "bundle.pem"      // every trusted CA: signing, next, retiring
	dirPermissions = 0o700
)

// PromoteDelay is how long [Authority.Maintain] leaves a new CA trusted but
// not signing, so that every process has reloaded the bundle (they poll it
// every PollInterval) before the first certificate it signed is presented.
const PromoteDelay = time.Minute

// Authority is a system's CA kept in a directory (the supervisor uses
// .shoal/identity/): it issues service certificates and keeps the bundle of
// trusted CAs that every process reads. Its methods are safe for concurrent
// use within one process; one process owns a directory at a time.
//
// CA rotation has three steps, so that no process ever meets a certificate
// from a CA it does not trust yet:
//
//  1. [Authority.Rotate] creates the next CA and adds it to the bundle. The
//     current CA keeps signing; processes reload the bundle within seconds.
//  2. [Authority.Promote] makes the next CA the signing one. Certificates
//     of the old CA stay valid (it is still in the bundle) and are replaced
//     as they come up for renewal.
//  3. [Authority.Prune] drops the old CA from the bundle once every
//     certificate it signed has expired: the promotion plus the longest
//     certificate lifetime.
//
// [Authority.Maintain] runs the three when due, so a supervisor that calls it
// periodically never lets its CA expire.
type Authority struct {
	dir string

	mu     sync.Mutex
	ca     *CA
	next   *CA // nil unless a rotation is under way
	bundle *Bundle
}

// OpenAuthority loads the CA of system kept in dir, creating the directory
// (0700), a CA (valid for DefaultCAValidity) and the bundle if there is none
// yet. It refuses a directory holding another system's CA.
func OpenAuthority(dir, system string) (*Authority, error) {
	if err := CheckTrustDomain(system); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := os.MkdirAll(dir, dirPermissions); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	a := &Authority{dir: dir}
	ca, err := a.readCA(caCertFile, caKeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ca, err = NewCA(system, 0); err != nil {
			return nil, err
		}
		if err := a.writeCA(ca, caCertFile, caKeyFile); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if ca.system != system {
		return nil, fmt.Errorf("identity: %s holds the CA of system %q, not %q", dir, ca.system, system)
	}
	a.ca = ca
	if a.next, err = a.readCA(nextCertFile, nextKeyFile); errors.Is(err, fs.ErrNotExist) {
		a.next = nil
	} else if err != nil {
		return nil, err
	}
	cas := []*x509.Certificate{ca.Cert}
	if a.next != nil {
		cas = append(cas, a.next.Cert)
	}
	b, err := os.ReadFile(a.path(bundleFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("identity: %w", err)
	default:
		old, err := ParseBundle(b)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, a.path(bundleFile))
		}
		for _, c := range old.cas {
			if !containsCert(cas, c) {
				cas = append(cas, c)
			}
		}
	}
	// The signing and next CAs are always trusted, whatever the file says.
	if err := a.setBundle(cas); err != nil {
		return nil, err
	}
	return a, nil
}

// HasAuthority reports whether dir holds a CA that [OpenAuthority] would
// open rather than create.
func HasAuthority(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, caCertFile))
	return err == nil
}

// Dir returns the authority's directory.
func (a *Authority) Dir() string { return a.dir }

// System returns the system (trust domain) the authority signs for.
func (a *Authority) System() string { return a.CA().system }

// CA returns the signing CA.
func (a *Authority) CA() *CA {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ca
}

// Bundle returns the trusted CAs.
func (a *Authority) Bundle() *Bundle {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bundle
}

// BundlePath returns the bundle file every process of the system reads.
func (a *Authority) BundlePath() string { return a.path(bundleFile) }

// Issue signs a certificate for service with the signing CA; ttl zero
// means DefaultCertTTL.
func (a *Authority) Issue(service string, ttl time.Duration) (*Certificate, error) {
	return a.CA().Issue(service, ttl)
}

// Credentials issues a certificate for service and returns it as in-memory
// credentials with the current bundle: for a process that holds the
// authority itself (the supervisor) and for tests.
func (a *Authority) Credentials(service string, ttl time.Duration) (*Credentials, error) {
	c, err := a.Issue(service, ttl)
	if err != nil {
		return nil, err
	}
	return NewCredentials(c.TLS(), a.Bundle())
}

// IssueFiles issues a certificate for service and writes it to dir (created
// 0700) as cert.pem and key.pem, returning the Files to hand to the process
// (see [Files.Env]); their Bundle is the authority's bundle file.
func (a *Authority) IssueFiles(service, dir string, ttl time.Duration) (Files, error) {
	if err := os.MkdirAll(dir, dirPermissions); err != nil {
		return Files{}, fmt.Errorf("identity: %w", err)
	}
	f := Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), Bundle: a.BundlePath()}
	c, err := a.Issue(service, ttl)
	if err != nil {
		return Files{}, err
	}
	return f, c.WriteFiles(f.Cert, f.Key)
}

// Renew replaces f's certificate and key with new ones for service when
// they are due ([RenewAt] has passed), missing or unreadable, for another
// identity, or no longer trusted by the bundle; otherwise it leaves them.
// It reports whether it wrote new files. A process watching f with a
// [Source] picks them up without a restart.
func (a *Authority) Renew(f Files, service string, ttl time.Duration) (bool, error) {
	if !a.needsRenewal(f, service) {
		return false, nil
	}
	c, err := a.Issue(service, ttl)
	if err != nil {
		return false, err
	}
	if err := c.WriteFiles(f.Cert, f.Key); err != nil {
		return false, err
	}
	return true, nil
}

func (a *Authority) needsRenewal(f Files, service string) bool {
	b, err := os.ReadFile(f.Cert)
	if err != nil {
		return true
	}
	leaf, err := parseCertPEM(b)
	if err != nil {
		return true
	}
	if _, err := os.Stat(f.Key); err != nil {
		return true
	}
	now := time.Now()
	id, err := a.Bundle().Verify(leaf, now)
	return err != nil || id.Service != service || !now.Before(RenewAt(leaf))
}

// Rotate creates the next CA (valid for validity; zero: DefaultCAValidity)
// and adds it to the bundle, without signing with it yet. It is an error
// while a rotation is already under way.
func (a *Authority) Rotate(validity time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next != nil {
		return errors.New("identity: a CA rotation is already under way: promote the next CA first")
	}
	next, err := NewCA(a.ca.system, validity)
	if err != nil {
		return err
	}
	// Trust first, then keep the key: a crash in between leaves a trusted
	// CA nobody can sign with, which Prune removes, never a signing CA that
	// is not trusted.
	if err := a.setBundle(append(a.bundle.CAs(), next.Cert)); err != nil {
		return err
	}
	if err := a.writeCA(next, nextCertFile, nextKeyFile); err != nil {
		return err
	}
	a.next = next
	return nil
}

// Promote makes the next CA the signing one. Give processes time to reload
// the bundle between Rotate and Promote (see PromoteDelay).
func (a *Authority) Promote() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == nil {
		return errors.New("identity: no CA rotation under way: Rotate first")
	}
	if err := a.writeCA(a.next, caCertFile, caKeyFile); err != nil {
		return err
	}
	if err := os.Remove(a.path(nextKeyFile)); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := os.Remove(a.path(nextCertFile)); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	a.ca, a.next = a.next, nil
	return nil
}

// Prune removes from the bundle every CA that is neither signing nor next
// once no certificate it signed can still be valid: the signing CA was
// promoted more than maxCertTTL (the longest lifetime issued) ago, or the
// old CA itself has expired. It returns how many it removed.
func (a *Authority) Prune(maxCertTTL time.Duration) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, err := os.Stat(a.path(caCertFile))
	if err != nil {
		return 0, fmt.Errorf("identity: %w", err)
	}
	now := time.Now()
	retired := now.After(st.ModTime().Add(maxCertTTL + clockSkew))
	var keep []*x509.Certificate
	for _, c := range a.bundle.cas {
		current := c.Equal(a.ca.Cert) || a.next != nil && c.Equal(a.next.Cert)
		if current || !retired && now.Before(c.NotAfter) {
			keep = append(keep, c)
		}
	}
	n := len(a.bundle.cas) - len(keep)
	if n == 0 {
		return 0, nil
	}
	return n, a.setBundle(keep)
}

// Maintain keeps the CA current: it starts a rotation when the signing CA
// has less than a fifth of its validity left, promotes the next CA once it
// has been trusted for PromoteDelay, and prunes retired CAs (certificates
// live at most maxCertTTL). The supervisor calls it at start and then
// periodically (every minute is plenty).
func (a *Authority) Maintain(maxCertTTL time.Duration) error {
	a.mu.Lock()
	ca, next := a.ca.Cert, a.next
	a.mu.Unlock()
	now := time.Now()
	if next == nil && now.After(ca.NotAfter.Add(-ca.NotAfter.Sub(ca.NotBefore)/5)) {
		if err := a.Rotate(ca.NotAfter.Sub(ca.NotBefore)); err != nil {
			return err
		}
	} else if next != nil {
		st, err := os.Stat(a.path(nextCertFile))
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		if now.After(st.ModTime().Add(PromoteDelay)) {
			if err := a.Promote(); err != nil {
				return err
			}
		}
	}
	_, err := a.Prune(maxCertTTL)
	return err
}

func (a *Authority) path(name string) string { return filepath.Join(a.dir, name) }

// readCA reads a CA's certificate and key files; fs.ErrNotExist if the
// certificate file is missing.
func (a *Authority) readCA(certName, keyName string) (*CA, error) {
	certPEM, err := os.ReadFile(a.path(certName))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keyPEM, err := os.ReadFile(a.path(keyName))
	if err != nil {
		// Not %w: a CA whose key is lost must stop the caller, not look
		// absent and be silently replaced.
		return nil, fmt.Errorf("identity: CA key: %v", err)
	}
	ca, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, a.path(certName))
	}
	return ca, nil
}

// writeCA writes the key, then the certificate: readCA's presence test is
// the certificate, so a crash in between leaves no half CA.
func (a *Authority) writeCA(ca *CA, certName, keyName string) error {
	if err := writeFileAtomic(a.path(keyName), ca.KeyPEM(), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(a.path(certName), ca.CertPEM(), 0o644)
}

// setBundle writes the bundle file and keeps it. Callers hold mu, or own a
// not yet shared Authority.
func (a *Authority) setBundle(cas []*x509.Certificate) error {
	b, err := NewBundle(cas...)
	if err != nil {
		return err
	}
	if a.bundle == nil || !bytes.Equal(a.bundle.PEM(), b.PEM()) {
		if err := writeFileAtomic(a.path(bundleFile), b.PEM(), 0o644); err != nil {
			return err
		}
	}
	a.bundle = b
	return nil
}

func containsCert(cs []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(cs, c.Equal)
}
