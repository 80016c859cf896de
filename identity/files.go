package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Environment variables that hand a process its identity files. The
// supervisor sets them for every instance it starts, SDK programs and
// `command:` programs alike; [FilesFromEnv] reads them.
const (
	EnvCert   = "SHOAL_IDENTITY_CERT"   // PEM certificate of this instance
	EnvKey    = "SHOAL_IDENTITY_KEY"    // its PKCS #8 PEM private key
	EnvBundle = "SHOAL_IDENTITY_BUNDLE" // PEM CAs to trust (the system's bundle)
)

// Files names a process's identity on disk.
type Files struct {
	Cert   string `json:"cert" yaml:"cert"`
	Key    string `json:"key" yaml:"key"`
	Bundle string `json:"bundle" yaml:"bundle"`
}

// FilesFromEnv reads the identity file paths from the environment through
// getenv (os.Getenv in production). It returns the zero Files and no error
// when none is set, and an error naming the missing ones when only some
// are.
func FilesFromEnv(getenv func(string) string) (Files, error) {
	f := Files{Cert: getenv(EnvCert), Key: getenv(EnvKey), Bundle: getenv(EnvBundle)}
	if f.IsZero() {
		return f, nil
	}
	var missing []error
	for _, v := range []struct{ name, val string }{{EnvCert, f.Cert}, {EnvKey, f.Key}, {EnvBundle, f.Bundle}} {
		if v.val == "" {
			missing = append(missing, fmt.Errorf("%s is not set", v.name))
		}
	}
	if len(missing) > 0 {
		return Files{}, fmt.Errorf("identity: set all of %s, %s and %s, or none: %w", EnvCert, EnvKey, EnvBundle, errors.Join(missing...))
	}
	return f, nil
}

// IsZero reports whether no path is set.
func (f Files) IsZero() bool { return f == Files{} }

// Env returns the NAME=value entries that hand f to a child process.
func (f Files) Env() []string {
	return []string{EnvCert + "=" + f.Cert, EnvKey + "=" + f.Key, EnvBundle + "=" + f.Bundle}
}

// LoadCredentials reads f and checks the certificate against the bundle:
// it must chain to one of its CAs and be valid now.
func LoadCredentials(f Files) (*Credentials, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	bundlePEM, err := os.ReadFile(f.Bundle)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s and %s: %w", f.Cert, f.Key, err)
	}
	bundle, err := ParseBundle(bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, f.Bundle)
	}
	return NewCredentials(cert, bundle)
}

// WriteFiles writes the key and then the certificate, each atomically (a
// reader sees the old file or the new one, never a part), the key 0600.
// The order matters to a [Source] watching them: it reloads when the
// certificate changes, and by then the matching key is in place.
func (c *Certificate) WriteFiles(certPath, keyPath string) error {
	if err := writeFileAtomic(keyPath, c.KeyPEM(), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, c.CertPEM(), 0o644)
}

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path, so that a crash or a concurrent reader
// never sees a partial file, and a private key is never readable by others,
// even for a moment.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	// Make the rename itself durable; not every file system supports
	// syncing a directory, and the data is already safe, so ignore errors.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
