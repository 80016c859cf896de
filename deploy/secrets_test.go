package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/manifest"
)

// fakeSecret is a Secret as testdata/fakekubectl keeps it.
type fakeSecret struct {
	Namespace string            `json:"namespace"`
	Type      string            `json:"type"`
	Data      map[string][]byte `json:"data"`
}

// runSecrets runs secrets.sh of files from the manifest's folder (the
// repository's root) with testdata/fakekubectl keeping Secrets in state,
// and returns its output.
func runSecrets(t *testing.T, files map[string][]byte, state string, env ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, secretsFile)
	if err := os.WriteFile(script, files[secretsFile], 0o755); err != nil {
		t.Fatal(err)
	}
	// A kubectl that keeps Secrets as JSON files in state.
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl"), "./testdata/fakekubectl").CombinedOutput(); err != nil {
		t.Fatalf("build the fake kubectl: %v\n%s", err, out)
	}
	cmd := exec.Command("sh", script)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "FAKE_KUBECTL_STATE="+state)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// readSecrets reads what the fake kubectl created, by name.
func readSecrets(t *testing.T, state string) map[string]fakeSecret {
	t.Helper()
	out := map[string]fakeSecret{}
	err := filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".json") {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var s fakeSecret
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		out[strings.TrimSuffix(d.Name(), ".json")] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// secrets.sh creates every Secret the objects reference, with every key
// they use, in their namespace, with usable content: a gossip key
// discovery accepts, the manifest's files as they are, a database URL, and
// certificates chaining to the CA bundle that name each service. Run
// again, it creates nothing.
func TestSecretsScript(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("secrets.sh needs openssl: %v", err)
	}
	m := flix(t)
	for _, tt := range []struct {
		name string
		opts KubeOptions
		env  []string
		url  string // the database URL, or its prefix
	}{
		{"dev postgres", KubeOptions{Namespace: "flix", Release: testRelease, DevPostgres: true}, nil, "postgres://shoal:"},
		{"own database", KubeOptions{Release: testRelease}, []string{"DATABASE_URL=postgres://u:p@db.example:5432/flix"}, "postgres://u:p@db.example:5432/flix"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Export(m, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			if out, err := runSecrets(t, files, state, tt.env...); err != nil {
				t.Fatalf("secrets.sh: %v\n%s", err, out)
			}
			secrets := readSecrets(t, state)
			objs := decodeAll(t, files)
			for name, keys := range referencedSecrets(objs) {
				s, ok := secrets[name]
				if !ok {
					t.Errorf("Secret %s is referenced but not created", name)
					continue
				}
				if s.Namespace != tt.opts.Namespace {
					t.Errorf("Secret %s created in namespace %q, want %q", name, s.Namespace, tt.opts.Namespace)
				}
				for _, k := range keys {
					if len(s.Data[k]) == 0 {
						t.Errorf("Secret %s has no key %s (has %v)", name, k, slices.Sorted(maps.Keys(s.Data)))
					}
				}
			}

			keys, err := discovery.KeysFromEnv(func(string) string { return string(secrets["flix-gossip"].Data[keyGossip]) })
			if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
				t.Errorf("gossip keyring: %d keys, %v; want one AES-256 key", len(keys), err)
			}
			for _, f := range []string{"examples/flix/keys/jwt-dev.key", "examples/flix/keys/jwt-dev.pub"} {
				want, err := os.ReadFile(filepath.Join("..", f))
				if err != nil {
					t.Fatal(err)
				}
				if got := secrets["flix-files"].Data[strings.ReplaceAll(f, "/", "_")]; string(got) != string(want) {
					t.Errorf("flix-files: %s differs from the file", f)
				}
			}
			if url := string(secrets["flix-database"].Data[keyDatabaseURL]); !strings.HasPrefix(url, tt.url) {
				t.Errorf("database URL %q, want %q...", url, tt.url)
			}
			if tt.opts.DevPostgres {
				pw := string(secrets["flix-postgres"].Data[keyPassword])
				if want := "postgres://shoal:" + pw + "@flix-postgres:5432/flix?sslmode=disable"; pw == "" || string(secrets["flix-database"].Data[keyDatabaseURL]) != want {
					t.Errorf("database URL %q, want %q", secrets["flix-database"].Data[keyDatabaseURL], want)
				}
			}
			checkIdentities(t, m.Services, secrets)

			before, _ := os.ReadFile(filepath.Join(state, "log"))
			if out, err := runSecrets(t, files, state, tt.env...); err != nil {
				t.Fatalf("secrets.sh, again: %v\n%s", err, out)
			}
			after, _ := os.ReadFile(filepath.Join(state, "log"))
			if created := strings.Count(string(after[len(before):]), "create "); created != 0 {
				t.Errorf("run again, secrets.sh created %d Secrets", created)
			}
		})
	}
}

// checkIdentities checks each service's certificate: it chains to the
// bundle, names the service (DNS) and its SPIFFE ID, serves and calls
// (server and client auth), and matches its key.
func checkIdentities(t *testing.T, services []*manifest.Service, secrets map[string]fakeSecret) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secrets["flix-identity-ca"].Data[keyCA]) {
		t.Fatal("flix-identity-ca: no certificate in the bundle")
	}
	for _, s := range services {
		sec := secrets["flix-identity-"+s.Name]
		if sec.Type != "kubernetes.io/tls" {
			t.Errorf("%s: Secret type %q", s.Name, sec.Type)
		}
		if _, err := tls.X509KeyPair(sec.Data["tls.crt"], sec.Data["tls.key"]); err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		block, _ := pem.Decode(sec.Data["tls.crt"])
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: s.Name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
		if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://flix/"+s.Name {
			t.Errorf("%s: URIs %v, want spiffe://flix/%s", s.Name, cert.URIs, s.Name)
		}
		if cert.IsCA {
			t.Errorf("%s: a CA certificate", s.Name)
		}
	}
}

// Without a database URL (and no development database), secrets.sh stops
// and says what to set.
func TestSecretsScriptNeedsDatabaseURL(t *testing.T) {
	files, err := Export(flix(t), KubeOptions{Release: testRelease})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runSecrets(t, files, t.TempDir(), "DATABASE_URL=")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(out, "set DATABASE_URL") {
		t.Fatalf("secrets.sh without DATABASE_URL: %v\n%s", err, out)
	}
}
