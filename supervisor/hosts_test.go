package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/discovery"
)

func TestHostOptionsRejected(t *testing.T) {
	m := &Manifest{Dir: "x", Path: "x/shoal.yaml", Services: []*ServiceSpec{{Name: "a", Build: "./a"}}}
	for _, tc := range []struct {
		name string
		o    HostOptions
		want string
	}{
		{"bind not an IP", HostOptions{Bind: "host.example"}, `bind address "host.example" is not an IP`},
		{"every interface, no advertise", HostOptions{Bind: "0.0.0.0"}, "give the address the other hosts reach"},
		{"advertise unspecified", HostOptions{Advertise: "0.0.0.0"}, `advertise address "0.0.0.0"`},
		{"gossip port", HostOptions{GossipPort: 70000}, "gossip port 70000"},
		{"join without port", HostOptions{Join: []string{"10.0.0.1"}}, `join address "10.0.0.1": want host:port`},
		{"join port 0", HostOptions{Join: []string{"10.0.0.1:0"}}, `join address "10.0.0.1:0"`},
		{"join without host", HostOptions{Join: []string{":7946"}}, "missing host"},
		{"only unknown", HostOptions{Only: []string{"a", "b"}}, `only: no service "b" in x/shoal.yaml; services: a`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(m, Options{Host: tc.o}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHostDefaults(t *testing.T) {
	m := &Manifest{Dir: "x", Services: []*ServiceSpec{{Name: "a", Build: "./a"}, {Name: "b", Build: "./b"}}}
	for _, tc := range []struct {
		o               HostOptions
		bind, advertise string
		port            int
		host            string
	}{
		{HostOptions{}, "127.0.0.1", "127.0.0.1", 0, ""},
		{HostOptions{Bind: "10.0.0.2"}, "10.0.0.2", "10.0.0.2", DefaultGossipPort, "10.0.0.2"},
		{HostOptions{Bind: "0.0.0.0", Advertise: "10.0.0.2", GossipPort: 7000}, "0.0.0.0", "10.0.0.2", 7000, "10.0.0.2"},
	} {
		s, err := New(m, Options{Host: tc.o})
		if err != nil {
			t.Fatal(err)
		}
		h := s.host
		if h.bind != tc.bind || h.advertise != tc.advertise || h.gossipPort != tc.port || h.hostName() != tc.host {
			t.Errorf("%+v: got %+v (host %q)", tc.o, h, h.hostName())
		}
	}
	s, err := New(m, Options{Host: HostOptions{Only: []string{"b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.order) != 1 || s.order[0].name != "b" {
		t.Errorf("--only b runs %v", s.order)
	}
	if _, err := s.lookup("a"); err == nil || !strings.Contains(err.Error(), "runs on other hosts") {
		t.Errorf("lookup of a service of another host: %v", err)
	}
}

func TestInstanceEnvOnHost(t *testing.T) {
	h, err := newHost(HostOptions{Bind: "0.0.0.0", Advertise: "10.0.0.2", Join: []string{"seed.example:7946"}}, &Manifest{})
	if err != nil {
		t.Fatal(err)
	}
	got := h.instanceEnv(4000, "10.0.0.2:7946")
	want := []string{"SHOAL_ADDR=0.0.0.0:4000", "SHOAL_GOSSIP_ADDR=0.0.0.0:0", "SHOAL_SEEDS=10.0.0.2:7946,seed.example:7946",
		"SHOAL_ADVERTISE_ADDR=10.0.0.2:4000", "SHOAL_GOSSIP_ADVERTISE_ADDR=10.0.0.2:0"}
	if !slices.Equal(got, want) {
		t.Errorf("instanceEnv = %q, want %q", got, want)
	}
	if c := h.gossip(7946); c.Profile != discovery.ProfileLAN || c.BindAddr != "0.0.0.0:7946" || c.AdvertiseAddr != "10.0.0.2:7946" {
		t.Errorf("gossip config %+v", c)
	}
	if got := h.local(4000); got != "127.0.0.1:4000" {
		t.Errorf("local = %q", got)
	}
}

// TestJoinNeedsKeys: a supervisor told to join never makes keys of its
// own; it names the one that is missing and starts nothing.
func TestJoinNeedsKeys(t *testing.T) {
	first := t.TempDir()
	m := &Manifest{Name: "test", Dir: first, Path: filepath.Join(first, "shoal.yaml")}
	if _, err := openKeys(m, filepath.Join(first, ".shoal"), false, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if _, err := chaos.LoadOrCreateKey(chaos.KeyFile(first)); err != nil {
		t.Fatal(err)
	}
	dir, secrets := t.TempDir(), t.TempDir()
	ca, gossip, chaosKey := filepath.Join(secrets, "identity")+"/", filepath.Join(secrets, "gossip.key"), filepath.Join(secrets, "chaos.key")
	// Every missing key is named at once, so that one copy fixes them all.
	steps := []struct {
		copy    string   // copied from the first host's .shoal before the attempt
		missing []string // named in the error
		present []string // not named
	}{
		{"", []string{ca, gossip, chaosKey}, nil},
		{"chaos.key", []string{ca, gossip}, []string{chaosKey}},
		{"identity", []string{gossip}, []string{ca, chaosKey}},
		{"gossip.key", nil, nil},
	}
	for _, st := range steps {
		if st.copy != "" {
			from, to := filepath.Join(first, ".shoal", st.copy), filepath.Join(secrets, st.copy)
			if fi, _ := os.Stat(from); fi.IsDir() {
				copyDir(t, from, to)
			} else if b, err := os.ReadFile(from); err != nil || os.WriteFile(to, b, 0o600) != nil {
				t.Fatal(err)
			}
		}
		if st.missing == nil {
			break
		}
		s, err := New(&Manifest{Name: "test", Dir: dir, Path: filepath.Join(dir, "shoal.yaml")},
			Options{Host: HostOptions{Join: []string{"127.0.0.1:7946"}, Secrets: secrets}})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Run(context.Background())
		if err == nil {
			t.Fatalf("with %q copied: Run = nil, want an error naming %q", st.copy, st.missing)
		}
		for _, f := range st.missing {
			if !strings.Contains(err.Error(), f+" ") && !strings.HasSuffix(err.Error(), f) {
				t.Errorf("with %q copied: %v\ndoes not name %s", st.copy, err, f)
			}
		}
		for _, f := range st.present {
			if strings.Contains(err.Error(), f) {
				t.Errorf("with %q copied: %v\nnames %s, which is there", st.copy, err, f)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".shoal", "identity")); err == nil {
		t.Error("a joining supervisor made a CA folder of its own")
	}
	if _, err := openKeys(m, secrets, true, func(string) string { return "" }); err != nil {
		t.Errorf("with every key copied: %v", err)
	}
}

// TestPSAcrossSupervisors: two supervisors of one system (the second
// joined the first, with a copy of its keys), each running one service;
// ps on either lists both, and only a supervisor of the system may ask.
func TestPSAcrossSupervisors(t *testing.T) {
	manifest := func(dir string) *Manifest {
		return &Manifest{Name: "test", Dir: dir, DrainTimeout: 2 * time.Second, Services: []*ServiceSpec{
			{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK},
			{Name: "hola", Command: []string{helloBin}, Register: RegisterSDK},
		}}
	}
	a := startSupervisorOn(t, manifest(t.TempDir()), HostOptions{Only: []string{"hello"}})
	waitServing(t, a.remote, "hello", 1)
	secrets := joinSecrets(t, a)
	b := startSupervisorOn(t, manifest(t.TempDir()), HostOptions{Only: []string{"hola"}, Join: []string{a.sup.seed.GossipAddr()}, Secrets: secrets})
	waitServing(t, b.remote, "hola", 1)
	// Joining is in the background: once joined, no warning.
	eventually(t, 30*time.Second, "b to have joined a (no warning)", func() error {
		if w := b.sup.notJoined(); w != "" {
			return errors.New(w)
		}
		return nil
	})
	for _, r := range []*running{a, b} {
		eventually(t, 30*time.Second, "ps of every host lists hello and hola", func() error {
			h, err := r.remote.PSHosts(context.Background())
			if err != nil {
				return err
			}
			var names []string
			for _, st := range h.Instances {
				if st.State == StateServing {
					names = append(names, st.Service)
				}
			}
			if slices.Sort(names); !slices.Equal(names, []string{"hello", "hola"}) || len(h.Unreachable) > 0 {
				return fmt.Errorf("serving %v, unreachable %v", names, h.Unreachable)
			}
			return nil
		})
	}
	// The CLI signs tokens with the key where each supervisor keeps it.
	if got, want := OperatorKeyFile(b.sup.m.Dir), filepath.Join(secrets, "chaos.key"); got != want {
		t.Errorf("OperatorKeyFile with --secrets = %s, want %s", got, want)
	}
	if got, want := OperatorKeyFile(a.sup.m.Dir), chaos.KeyFile(a.sup.m.Dir); got != want {
		t.Errorf("OperatorKeyFile = %s, want %s", got, want)
	}
	// PS stays this host's: what kill, chaos and profile act on.
	if st := psOrFail(t, a.remote); len(st) != 1 || st[0].Service != "hello" {
		t.Errorf("PS of the first supervisor = %+v, want its hello only", st)
	}

	// The peer API answers the system's supervisors only.
	peer := a.sup.seed.Self().Addr
	c := b.caller(t, SupervisorService) // a certificate of the system, but of service "tester"
	if resp := get(t, c, "https://"+peer+peerPS); resp.StatusCode != http.StatusForbidden {
		t.Errorf("peer API to another service of the system: %s, want 403", resp.Status)
	}
	if resp, err := http.Get("http://" + peer + peerPS); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("peer API answered plain HTTP")
		}
	}
}

// TestJoinWithWrongGossipKeyWarns: a host whose gossip key is not the
// first host's cannot join it; its instances serve all the same, so the
// console says that it is not joined, naming the seed, rather than look
// healthy.
func TestJoinWithWrongGossipKeyWarns(t *testing.T) {
	m := func() *Manifest {
		return &Manifest{Name: "test", Dir: t.TempDir(), DrainTimeout: 2 * time.Second, Services: []*ServiceSpec{
			{Name: "hello", Command: []string{helloBin}, Register: RegisterSDK},
		}}
	}
	a := startSupervisorOn(t, m(), HostOptions{})
	waitServing(t, a.remote, "hello", 1)
	secrets := joinSecrets(t, a)
	key, err := discovery.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "gossip.key"), []byte(discovery.EncodeKeys(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := a.sup.seed.GossipAddr()
	b := startSupervisorOn(t, m(), HostOptions{Join: []string{seed}, Secrets: secrets})
	waitServing(t, b.remote, "hello", 1)
	eventually(t, 30*time.Second, "the console says the host is not joined", func() error {
		if out := b.out.String(); !strings.Contains(out, "WARNING: not joined to "+seed) {
			return fmt.Errorf("nothing said of it:\n%s", out)
		}
		return nil
	})
}

// joinSecrets copies the keys of the system a runs to a folder for
// another supervisor's --secrets, as an operator copies them to a host.
func joinSecrets(t *testing.T, a *running) string {
	t.Helper()
	secrets := t.TempDir()
	copyDir(t, filepath.Join(a.sup.m.Dir, ".shoal", "identity"), filepath.Join(secrets, "identity"))
	for _, f := range []string{"gossip.key", "chaos.key"} {
		b, err := os.ReadFile(filepath.Join(a.sup.m.Dir, ".shoal", f))
		if err != nil || os.WriteFile(filepath.Join(secrets, f), b, 0o600) != nil {
			t.Fatal(err)
		}
	}
	return secrets
}
