package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/manifest"
)

// The system's keys, which shoal up creates on its first run and keeps in
// the manifest's .shoal folder (see docs/ARCHITECTURE.md, "Security
// model"):
//
//   - the CA (.shoal/identity, identity.Authority): every instance gets a
//     certificate of its service for each process, in
//     .shoal/identity/instances/<instance ID>/ (removed when the process
//     ends), renewed while it runs; programs marked plaintext: get none;
//   - the gossip keyring (.shoal/gossip.key, 0600, what SHOAL_GOSSIP_KEY
//     holds), which every instance and the supervisor's own members
//     gossip with. SHOAL_GOSSIP_KEY in shoal up's environment wins over
//     the file (a keyring being rotated, say).
const (
	identityDir  = "identity"
	instancesDir = "instances"
	// GossipKeyFile is where shoal up keeps the system's gossip keyring,
	// relative to the manifest's folder.
	GossipKeyFile = ".shoal/gossip.key"
	// maintainEvery is how often the supervisor renews due certificates
	// and keeps the CA current: certificates are renewed a third of their
	// lifetime (8 h) before they expire, so a minute is plenty.
	maintainEvery = time.Minute
)

// keys are the system's secrets while the supervisor runs.
type keys struct {
	auth      *identity.Authority
	gossip    [][]byte         // the keyring, primary first
	self      *identity.Source // the supervisor's own certificate (SupervisorService)
	policy    string           // SHOAL_POLICY's value; "" without authorization:
	plaintext string           // SHOAL_PLAINTEXT_SERVICES's value
	join      bool             // a copy of another host's CA: that host keeps it current
}

// openKeys opens (or creates) the CA and the gossip keyring of the system
// in secrets (<manifest folder>/.shoal by default). A supervisor that joins
// a running system (join) never creates them: a CA of its own would split
// the system's trust, a gossip key of its own its cluster. It opens the
// copies of the first host's and leaves keeping the CA current (rotation)
// to that host.
func openKeys(m *Manifest, secrets string, join bool, getenv func(string) string) (*keys, error) {
	idDir := filepath.Join(secrets, identityDir)
	keyFile := filepath.Join(secrets, filepath.Base(GossipKeyFile))
	if join {
		if err := joinKeys(secrets, getenv); err != nil {
			return nil, err
		}
	}
	auth, err := identity.OpenAuthority(idDir, manifest.SystemName(m.Name))
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if !join {
		if err := auth.Maintain(identity.DefaultCertTTL); err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
	}
	k := &keys{auth: auth, join: join}
	if k.gossip, err = gossipKeys(keyFile, getenv); err != nil {
		return nil, err
	}
	creds, err := auth.Credentials(SupervisorService, 0)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	k.self = identity.NewSource(creds)
	if p := m.Authorization.Policy(); p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("supervisor: authorization: %w", err)
		}
		k.policy = string(b)
	}
	var plain []string
	for _, s := range m.Services {
		if s.Plaintext {
			plain = append(plain, s.Name)
		}
	}
	k.plaintext = strings.Join(plain, ",")
	return k, nil
}

// joinKeys checks that secrets holds a copy of each of the first host's
// keys, for a supervisor joining a running system, and names every one
// missing at once. A joining host never makes keys of its own: a CA would
// split the system's trust, a gossip key its cluster, and fault tokens
// signed with another chaos key would not verify on every host.
func joinKeys(secrets string, getenv func(string) string) error {
	var missing []string
	if id := filepath.Join(secrets, identityDir); !identity.HasAuthority(id) {
		missing = append(missing, id+"/ (the CA: the first host's identity/*.pem)")
	}
	if getenv(discovery.EnvGossipKey) == "" {
		f := filepath.Join(secrets, filepath.Base(GossipKeyFile))
		if why := unreadable(f); why != "" {
			missing = append(missing, f+" ("+why+"; or set "+discovery.EnvGossipKey+")")
		}
	}
	f := filepath.Join(secrets, filepath.Base(chaos.KeyFile("")))
	if why := unreadable(f); why != "" {
		missing = append(missing, f+" ("+why+")")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("supervisor: joining a running system needs copies of the first host's keys (its .shoal/identity/*.pem, gossip.key and chaos.key, mode 0600); missing: %s",
		strings.Join(missing, "; "))
}

// unreadable says why the file at path is missing ("not there", or the
// error, e.g. permission denied), "" if it is there.
func unreadable(path string) string {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, fs.ErrNotExist):
		return "not there"
	}
	return err.Error()
}

// gossipKeys returns the keyring: SHOAL_GOSSIP_KEY if set, else the file
// at path, created with a new key if there is none. A file others may read
// is refused: anyone holding the key can join the system's gossip.
func gossipKeys(path string, getenv func(string) string) ([][]byte, error) {
	if ks, err := discovery.KeysFromEnv(getenv); err != nil || ks != nil {
		if err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		return ks, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := discovery.NewKey()
		if err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		b = []byte(discovery.EncodeKeys(key) + "\n")
		// O_EXCL: of two shoal up racing on a new folder, one writes the
		// key and the other reads it (the lock is taken after this).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return gossipKeys(path, getenv)
		}
		if err != nil {
			return nil, fmt.Errorf("supervisor: gossip key: %w", err)
		}
		_, werr := f.Write(b)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return nil, fmt.Errorf("supervisor: gossip key: %w", werr)
		}
	} else if err != nil {
		return nil, fmt.Errorf("supervisor: gossip key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("supervisor: %s is readable by others (mode %04o): whoever can read it can join the system's gossip; chmod 600 it", path, fi.Mode().Perm())
	}
	ks, err := discovery.KeysFromEnv(func(string) string { return string(bytes.TrimSpace(b)) })
	if err != nil {
		return nil, fmt.Errorf("supervisor: %s: %w", path, err)
	}
	if ks == nil {
		return nil, fmt.Errorf("supervisor: %s is empty: remove it to have a new key made, or write a keyring as %s takes it", path, discovery.EnvGossipKey)
	}
	return ks, nil
}

// instanceFiles issues a certificate for a process of svc and returns the
// files; zero Files for a plaintext service.
func (k *keys) instanceFiles(svc *service, id string) (identity.Files, error) {
	if svc.spec.Plaintext {
		return identity.Files{}, nil
	}
	return k.auth.IssueFiles(svc.name, filepath.Join(k.auth.Dir(), instancesDir, id), 0)
}

// removeFiles deletes a process's certificate and key once it has ended.
func removeFiles(f identity.Files) {
	if !f.IsZero() {
		os.RemoveAll(filepath.Dir(f.Cert))
	}
}

// env is what every instance process gets of the system's keys and rules.
func (k *keys) env(f identity.Files) []string {
	env := []string{discovery.EnvGossipKey + "=" + discovery.EncodeKeys(k.gossip...)}
	if !f.IsZero() {
		env = append(env, f.Env()...)
	}
	if k.policy != "" {
		env = append(env, "SHOAL_POLICY="+k.policy)
	}
	if k.plaintext != "" {
		env = append(env, "SHOAL_PLAINTEXT_SERVICES="+k.plaintext)
	}
	return env
}

// maintain keeps the CA current, renews the certificates of running
// processes that are due, and the supervisor's own. Problems are logged
// and tried again at the next round: a certificate has a third of its
// lifetime left when it is first due.
func (s *Supervisor) maintain() {
	k := s.keys
	// A joined host's CA is a copy: rotating it would give this host a CA
	// the others do not trust. The first host rotates; its folder is
	// copied again.
	if !k.join {
		if err := k.auth.Maintain(identity.DefaultCertTTL); err != nil {
			s.say(fmt.Sprintf("keeping the system's CA current failed: %v", err))
		}
	}
	s.mu.Lock()
	type due struct {
		svc   string
		files identity.Files
	}
	var running []due
	for _, svc := range s.order {
		for _, in := range svc.insts {
			in.mu.Lock()
			if !in.files.IsZero() {
				running = append(running, due{svc.name, in.files})
			}
			in.mu.Unlock()
		}
	}
	s.mu.Unlock()
	for _, d := range running {
		if _, err := k.auth.Renew(d.files, d.svc, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("renewing a certificate failed", "service", d.svc, "cert", d.files.Cert, "err", err)
		}
	}
	c := k.self.Credentials()
	if time.Now().After(identity.RenewAt(c.Cert.Leaf)) || c.Bundle != k.auth.Bundle() {
		if creds, err := k.auth.Credentials(SupervisorService, 0); err == nil {
			k.self.Set(creds)
		} else {
			s.log.Warn("renewing the supervisor's certificate failed", "err", err)
		}
	}
}

// runMaintenance calls maintain every maintainEvery until stop is closed.
// Its goroutine is owned by Run.
func (s *Supervisor) runMaintenance(stop <-chan struct{}) {
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.maintain()
		}
	}
}

// prober returns the client of svc's health checks and the scheme they
// use. SDK programs are probed on their admin listener, in plain HTTP; a
// program the supervisor registers, on its own port, over mutual TLS with
// the supervisor's certificate to an instance that proves it is svc,
// unless the manifest marks it plaintext.
func (k *keys) prober(svc *service) (*http.Client, string) {
	tr := &http.Transport{DisableKeepAlives: true}
	if svc.register == RegisterSDK || svc.spec.Plaintext {
		return &http.Client{Transport: tr}, "http"
	}
	tr.DialTLSContext = identity.NewDialer(k.self, nil).ForService(svc.name)
	return &http.Client{Transport: tr}, "https"
}
