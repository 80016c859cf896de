package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often [Source.Run] checks the identity files for a
// change. Certificates are renewed a third of their lifetime (8 h by
// default) before they expire, so seconds of delay cost nothing; a stat of
// two files is all a poll costs.
const PollInterval = 2 * time.Second

// Source holds a process's current [Credentials] and replaces them when
// they are renewed, so that TLS configurations built on it ([ServerConfig],
// [Dialer]) and token issuers and verifiers always use the newest
// certificate without a restart. Reading is one atomic load.
//
// A Source loaded from files ([LoadSource]) is kept fresh by [Source.Run],
// or by calling [Source.Reload] (on SIGHUP, say). An in-memory Source
// ([NewSource]) changes only through [Source.Set].
type Source struct {
	cur   atomic.Pointer[Credentials]
	files Files
	log   *slog.Logger

	mu   sync.Mutex // serializes Reload; guards seen
	seen stamps     // the files behind cur
}

// stamps identify the versions of the files a Source loaded. The key is not
// watched: writers replace the key first and the certificate last (see
// [Certificate.WriteFiles]), so a changed certificate is the signal that
// both are new.
type stamps struct{ cert, bundle os.FileInfo }

// NewSource returns a Source holding c.
func NewSource(c *Credentials) *Source {
	s := &Source{}
	s.cur.Store(c)
	return s
}

// LoadSource reads the credentials in f and returns a Source holding them.
// Reload failures later are logged to log (nil: slog.Default()) and the
// previous credentials are kept.
func LoadSource(f Files, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Source{files: f, log: log}
	st, err := stat(f)
	if err != nil {
		return nil, err
	}
	c, err := LoadCredentials(f)
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	s.seen = st
	return s, nil
}

// Credentials returns the current credentials. It never blocks.
func (s *Source) Credentials() *Credentials { return s.cur.Load() }

// Set replaces the credentials, for a Source its owner renews in memory.
func (s *Source) Set(c *Credentials) { s.cur.Store(c) }

// Reload re-reads the files if the certificate or the bundle changed since
// they were last loaded, and reports whether the credentials were replaced.
// On an error (a file missing, a certificate that does not verify) the
// current credentials stay, and the next Reload tries again.
func (s *Source) Reload() (bool, error) {
	if s.files.IsZero() {
		return false, errors.New("identity: Reload of a Source not loaded from files")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := stat(s.files)
	if err != nil {
		return false, err
	}
	if sameFile(st.cert, s.seen.cert) && sameFile(st.bundle, s.seen.bundle) {
		return false, nil
	}
	c, err := LoadCredentials(s.files)
	if err != nil {
		return false, err
	}
	s.cur.Store(c)
	s.seen = st
	return true, nil
}

// Run calls Reload every PollInterval until ctx ends, then returns nil. It
// logs each replacement at info level and each failure as a warning (once
// per distinct error, so a file that stays broken does not flood the log).
// Run is the only goroutine a file-backed Source needs; its owner starts it
// next to the server or client using the Source.
func (s *Source) Run(ctx context.Context) error {
	if s.files.IsZero() {
		return errors.New("identity: Run of a Source not loaded from files")
	}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		changed, err := s.Reload()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				s.log.Warn("identity: reload failed; keeping the current certificate", "cert", s.files.Cert, "err", err)
			}
			lastErr = err.Error()
		case changed:
			c := s.Credentials()
			s.log.Info("identity: certificate reloaded", "id", c.ID.String(), "not_after", c.Cert.Leaf.NotAfter)
			lastErr = ""
		default:
			lastErr = ""
		}
	}
}

func stat(f Files) (stamps, error) {
	cert, err := os.Stat(f.Cert)
	if err != nil {
		return stamps{}, fmt.Errorf("identity: %w", err)
	}
	bundle, err := os.Stat(f.Bundle)
	if err != nil {
		return stamps{}, fmt.Errorf("identity: %w", err)
	}
	return stamps{cert: cert, bundle: bundle}, nil
}

// sameFile reports whether a and b describe the same version of a file:
// the same inode (atomic writes rename a new one in place), size and
// modification time.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
