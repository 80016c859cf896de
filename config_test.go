package shoal

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shoal-dev/shoal/client"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"nothing set", nil, Config{Name: "base"}, ""},
		{"all set", map[string]string{
			EnvName: "ratings", EnvID: "ratings-1", EnvVersion: "v2", EnvAddr: "127.0.0.1:9000",
			EnvAdvertiseAddr: "10.0.0.1:9000", EnvGossipAddr: "127.0.0.1:7946", EnvSeeds: "a:1, b:2,,",
			EnvGossipProfile: "lan", EnvDrainTimeout: "3s", EnvDependencyWait: "4s", EnvPrepareTimeout: "5s",
		}, Config{Name: "ratings", ID: "ratings-1", Version: "v2", Addr: "127.0.0.1:9000",
			AdvertiseAddr: "10.0.0.1:9000", GossipAddr: "127.0.0.1:7946", Seeds: []string{"a:1", "b:2"},
			GossipProfile: "lan", DrainTimeout: 3 * time.Second, DependencyWait: 4 * time.Second, PrepareTimeout: 5 * time.Second}, ""},
		{"PORT", map[string]string{EnvPort: "8080"}, Config{Name: "base", Addr: ":8080"}, ""},
		{"SHOAL_ADDR beats PORT", map[string]string{EnvPort: "8080", EnvAddr: "127.0.0.1:1"}, Config{Name: "base", Addr: "127.0.0.1:1"}, ""},
		{"POD_IP", map[string]string{EnvPodIP: "10.4.0.7", EnvAddr: "0.0.0.0:8080"}, Config{Name: "base", Addr: "0.0.0.0:8080", GossipAdvertiseAddr: "10.4.0.7:0"}, ""},
		{"gossip advertise beats POD_IP", map[string]string{EnvPodIP: "10.4.0.7", EnvGossipAdvertiseAddr: "192.0.2.1:7946"}, Config{Name: "base", GossipAdvertiseAddr: "192.0.2.1:7946"}, ""},
		{"bad POD_IP", map[string]string{EnvPodIP: "pod-7"}, Config{}, `POD_IP="pod-7"`},
		{"bad PORT", map[string]string{EnvPort: "http"}, Config{}, `PORT="http"`},
		{"bad drain", map[string]string{EnvDrainTimeout: "ten"}, Config{}, `SHOAL_DRAIN_TIMEOUT="ten"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Name: "base"}
			err := c.FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, c, cmpopts.IgnoreFields(Config{}, "Logger")); d != "" {
				t.Fatalf("config mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestConfigFlagsOverrideEnv(t *testing.T) {
	c := Config{Name: "base"}
	if err := c.FromEnv(func(k string) string { return map[string]string{EnvName: "env", EnvSeeds: "e:1"}[k] }); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-name", "flag", "-seeds", "f:1,f:2", "-drain-timeout", "2s", "-dependency-wait", "1s", "-prepare-timeout", "1m"}); err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "flag", Seeds: []string{"f:1", "f:2"}, DrainTimeout: 2 * time.Second, DependencyWait: time.Second, PrepareTimeout: time.Minute}
	if d := cmp.Diff(want, c, cmpopts.IgnoreFields(Config{}, "Logger")); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings; nil means valid
	}{
		{"minimal", Config{Name: "ratings"}, nil},
		{"no name", Config{}, []string{"name is required", EnvName}},
		{"bad name", Config{Name: "Ratings_v2"}, []string{`name "Ratings_v2"`}},
		{"bad addr", Config{Name: "a", Addr: "8080"}, []string{`addr "8080"`}},
		{"bad calls", Config{Name: "a", Calls: []string{"ratings", "", "Cat"}}, []string{`calls: "" is not a service name`, `calls: "Cat"`}},
		{"negative dependency wait", Config{Name: "a", DependencyWait: -time.Second}, []string{"dependency_wait -1s"}},
		{"negative prepare timeout", Config{Name: "a", PrepareTimeout: -time.Second}, []string{"prepare_timeout -1s"}},
		{"bad gossip", Config{Name: "a", GossipAddr: "nope"}, []string{`gossip_addr "nope"`}},
		{"gossip advertise host name", Config{Name: "a", GossipAdvertiseAddr: "pod.example:7946"}, []string{`gossip_advertise_addr "pod.example:7946"`}},
		{"negative drain", Config{Name: "a", DrainTimeout: -time.Second}, []string{"drain_timeout -1s"}},
		{"two problems", Config{Name: "A", Addr: "x"}, []string{`name "A"`, `addr "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, "Validate()", tt.cfg.withDefaults().Validate(), tt.want)
		})
	}
}

// checkErr fails t unless err is nil where want is, or else an error that
// mentions every string of want; what names the call that returned err.
func checkErr(t *testing.T, what string, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v, want nil", what, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s = nil, want an error", what)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s = %q, missing %q", what, err, w)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Name: "ratings"}.withDefaults()
	if c.GossipProfile != "local" || c.Addr != "127.0.0.1:0" || c.DrainTimeout != defaultDrainTimeout || !strings.HasPrefix(c.ID, "ratings-") {
		t.Fatalf("defaults: %+v", c)
	}
	if c := (Config{Name: "a", GossipAddr: "0.0.0.0:7946"}).withDefaults(); c.GossipProfile != "lan" {
		t.Fatalf("gossip on all interfaces got profile %q, want lan", c.GossipProfile)
	}
}

func TestAdvertise(t *testing.T) {
	tests := []struct{ configured, listen, gossip, want string }{
		{"", "127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:8080"},
		{"10.0.0.5:80", "0.0.0.0:8080", "", "10.0.0.5:80"},
		{"", "0.0.0.0:8080", "10.1.2.3:7946", "10.1.2.3:8080"},
		{"", "[::]:8080", "0.0.0.0:7946", "127.0.0.1:8080"},
		{"", "0.0.0.0:8080", "10.4.0.7:0", "10.4.0.7:8080"}, // POD_IP, as the gossip advertise address

	}
	for _, tt := range tests {
		if got := advertise(tt.configured, tt.listen, tt.gossip); got != tt.want {
			t.Errorf("advertise(%q, %q, %q) = %q, want %q", tt.configured, tt.listen, tt.gossip, got, tt.want)
		}
	}
}

func TestConfigDependenciesFromEnv(t *testing.T) {
	c := Config{Client: client.Config{Dependencies: map[string]client.Config{
		"ratings": {MaxAttempts: 2, Timeout: time.Second},
	}}}
	env := map[string]string{EnvDependencies: `{"ratings": {"timeout": 300000000}, "catalog": {"max_in_flight": 8}}`}
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	r, cat := c.Client.Dependencies["ratings"], c.Client.Dependencies["catalog"]
	if r.MaxAttempts != 2 || r.Timeout != 300*time.Millisecond || cat.MaxInFlight != 8 {
		t.Errorf("dependencies = %+v", c.Client.Dependencies)
	}
	env[EnvDependencies] = `{"ratings": {"timout": 1}}`
	if err := c.FromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), EnvDependencies) {
		t.Errorf("unknown field: err = %v", err)
	}
}
