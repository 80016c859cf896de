package supervisor

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/identity"
)

func TestGossipKeys(t *testing.T) {
	envKey, err := discovery.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	for _, tt := range []struct {
		name   string
		file   string      // content written before; "" for no file
		mode   os.FileMode // of that file
		getenv func(string) string
		want   string // an error containing it; "" for none
	}{
		{name: "made on first use", getenv: noEnv},
		{name: "the environment wins", getenv: func(string) string { return discovery.EncodeKeys(envKey) }},
		{name: "bad environment", getenv: func(string) string { return "not base64!" }, want: discovery.EnvGossipKey},
		{name: "readable by others", file: discovery.EncodeKeys(envKey), mode: 0o644, getenv: noEnv, want: "chmod 600"},
		{name: "empty", file: "\n", mode: 0o600, getenv: noEnv, want: "is empty"},
		{name: "kept", file: discovery.EncodeKeys(envKey) + "\n", mode: 0o600, getenv: noEnv},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gossip.key")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := gossipKeys(path, tt.getenv)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("gossipKeys: %v, want an error containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || len(keys[0]) != 32 {
				t.Fatalf("keyring of %d keys, want one of 32 bytes", len(keys))
			}
			fi, err := os.Stat(path)
			switch {
			case tt.getenv("") != "":
				if !bytes.Equal(keys[0], envKey) || !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("with %s set: key from the environment %v, file %v; want the variable's key and no file", discovery.EnvGossipKey, bytes.Equal(keys[0], envKey), err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case fi.Mode().Perm() != 0o600:
				t.Errorf("%s is mode %04o, want 0600", path, fi.Mode().Perm())
			}
			if tt.file != "" && !bytes.Equal(keys[0], envKey) {
				t.Error("the key in the file was not the one used")
			}
			again, err := gossipKeys(path, noEnv)
			if err != nil || !bytes.Equal(again[0], keys[0]) {
				t.Errorf("second run: %v, same key %v; want the file's key again", err, err == nil && bytes.Equal(again[0], keys[0]))
			}
		})
	}
}

// Under a supervisor every SDK instance has the system's gossip key, a
// certificate of its service and the policy; it serves mutual TLS only,
// enforces the policy, takes renewed certificates without a restart, and
// its certificate goes when its process does.
func TestInstanceIdentity(t *testing.T) {
	m := &Manifest{Name: "My System", Authorization: &Authorization{Allow: map[string][]string{"hello": {"tester"}}},
		Services: []*ServiceSpec{{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK}}}
	r := startSupervisor(t, m)
	ctx := context.Background()
	hello := waitServing(t, r.remote, "hello", 1)[0]

	t.Run("keys on disk", func(t *testing.T) {
		for path, want := range map[string]os.FileMode{
			GossipKeyFile:                                        0o600,
			".shoal/identity":                                    0o700 | fs.ModeDir,
			".shoal/identity/ca-key.pem":                         0o600,
			".shoal/identity/instances":                          0o700 | fs.ModeDir,
			".shoal/identity/bundle.pem":                         0o644,
			".shoal/identity/instances/" + hello.ID + "/key.pem": 0o600,
		} {
			fi, err := os.Stat(filepath.Join(m.Dir, path))
			if err != nil {
				t.Error(err)
			} else if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != want {
				t.Errorf("%s: mode %v, want %v", path, got, want)
			}
		}
	})

	t.Run("environment", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hello.PID))
		if err != nil {
			t.Skipf("cannot read the environment of a process: %v", err)
		}
		env := strings.Split(string(b), "\x00")
		dir := filepath.Join(m.Dir, ".shoal", "identity")
		for _, want := range []string{
			discovery.EnvGossipKey + "=" + discovery.EncodeKeys(r.sup.keys.gossip...),
			identity.EnvCert + "=" + filepath.Join(dir, "instances", hello.ID, "cert.pem"),
			identity.EnvKey + "=" + filepath.Join(dir, "instances", hello.ID, "key.pem"),
			identity.EnvBundle + "=" + filepath.Join(dir, "bundle.pem"),
			`SHOAL_POLICY={"allow":{"hello":["tester"]}}`,
			"SHOAL_ADMIN_ADDR=" + hello.Admin,
		} {
			if !slices.Contains(env, want) {
				t.Errorf("environment lacks %s", want)
			}
		}
	})

	t.Run("mutual TLS and the policy", func(t *testing.T) {
		if err := getJSON(r.caller(t, "hello"), "https://"+hello.Addr+"/hello", new(any)); err != nil {
			t.Errorf("a caller the policy allows: %v", err)
		}
		if resp := get(t, http.DefaultClient, "http://"+hello.Addr+"/hello"); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP: %s, want 400 from the TLS listener", resp.Status)
		}
		creds, err := r.sup.keys.auth.Credentials("stranger", 0)
		if err != nil {
			t.Fatal(err)
		}
		stranger := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
			DialTLSContext: identity.NewDialer(identity.NewSource(creds), nil).ForService("hello")}}
		if resp := get(t, stranger, "https://"+hello.Addr+"/hello"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a service the policy does not name: %s, want 403", resp.Status)
		}
		if err := getJSON(http.DefaultClient, "http://"+hello.Admin+"/infoz", new(any)); err != nil {
			t.Errorf("the admin listener, in plain HTTP: %v", err)
		}
	})

	t.Run("renewed while it runs", func(t *testing.T) {
		// A certificate past two thirds of its life, as it would be after
		// 16 hours, in place of the one issued at start.
		files := identity.Files{
			Cert:   filepath.Join(m.Dir, ".shoal", "identity", "instances", hello.ID, "cert.pem"),
			Key:    filepath.Join(m.Dir, ".shoal", "identity", "instances", hello.ID, "key.pem"),
			Bundle: r.sup.keys.auth.BundlePath(),
		}
		old, err := r.sup.keys.auth.Issue("hello", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.WriteFiles(files.Cert, files.Key); err != nil {
			t.Fatal(err)
		}
		r.sup.maintain()
		renewed := readLeaf(t, files.Cert)
		if renewed.SerialNumber.Cmp(old.Leaf.SerialNumber) == 0 || time.Until(renewed.NotAfter) < 23*time.Hour {
			t.Fatalf("after maintain: certificate valid until %v, want a new one for 24h", renewed.NotAfter)
		}
		// The instance presents it from its next connection on, without a
		// restart (it checks its files every identity.PollInterval).
		eventually(t, 10*time.Second, "the instance presents the renewed certificate", func() error {
			resp, err := r.caller(t, "hello").Get("https://" + hello.Addr + "/hello")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(renewed.SerialNumber) != 0 {
				return fmt.Errorf("presents serial %v, want %v", got, renewed.SerialNumber)
			}
			return nil
		})
		if now := psOf(t, r.remote, "hello")[0]; now.PID != hello.PID {
			t.Errorf("hello/1 is pid %d, want %d: renewal needs no restart", now.PID, hello.PID)
		}
	})

	t.Run("gone with its process", func(t *testing.T) {
		if _, err := r.remote.Kill(ctx, "hello", 1, "KILL"); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(m.Dir, ".shoal", "identity", "instances", hello.ID)
		eventually(t, 15*time.Second, "the killed process's certificate removed", func() error {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %v", dir, err)
			}
			return nil
		})
		now := waitServing(t, r.remote, "hello", 1)[0]
		if now.ID == hello.ID {
			t.Fatal("the restarted process has the old instance ID")
		}
		if err := getJSON(r.caller(t, "hello"), "https://"+now.Addr+"/hello", new(any)); err != nil {
			t.Errorf("the restarted process: %v", err)
		}
	})
}

func readLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
