package chaos

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvKey is the environment variable through which shoal up gives every
// instance the operator's public key (shoal.Config.FaultKey).
const EnvKey = "SHOAL_FAULT_KEY"

// KeyFile is where shoal up keeps the operator's key for the system whose
// manifest is in dir: <dir>/.shoal/chaos.key, readable by its owner only.
// Whoever can read it can inject faults; the CLI (shoal chaos token,
// shoal experiment run) reads it there.
func KeyFile(dir string) string { return filepath.Join(dir, ".shoal", "chaos.key") }

// LoadOrCreateKey reads the private key at path (PEM, PKCS #8), creating
// one (mode 0600) when there is none. Two processes creating it at once
// end up with the same key.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := LoadKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	_, fresh, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(fresh)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".chaos-key-*")
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("chaos: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("chaos: write %s: %w", path, err)
	}
	// Link, unlike rename, fails if another process made the key first:
	// then that one is the key.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	return LoadKey(path)
}

// LoadKey reads the private key at path, written by LoadOrCreateKey. An
// error wraps os.ErrNotExist when there is no file.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chaos: operator key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("chaos: %s holds no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("chaos: %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("chaos: %s holds a %T, not an Ed25519 key", path, k)
	}
	return key, nil
}

// PublicKey writes key's public half as NewVerifier and SHOAL_FAULT_KEY
// take it: its 32 bytes in standard base64.
func PublicKey(key ed25519.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}
