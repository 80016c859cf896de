package discovery

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings; nil means valid
	}{
		// Off loopback, gossip needs a key: the zero value and the LAN and
		// WAN presets bind 0.0.0.0.
		{"zero value", func(*Config) {}, []string{"0.0.0.0:7946 is not loopback-only", EnvGossipKey}},
		{"default", func(c *Config) { *c = DefaultConfig() }, []string{EnvGossipKey}},
		{"default with a key", func(c *Config) { *c = DefaultConfig(); c.Keys = [][]byte{make([]byte, 32)} }, nil},
		{"local", func(c *Config) { *c = LocalConfig() }, nil},
		{"local profile, default bind", func(c *Config) { c.Profile = ProfileLocal }, nil},
		{"wan", func(c *Config) { *c = WANConfig() }, []string{EnvGossipKey}},
		{"wan with a key", func(c *Config) { *c = WANConfig(); c.Keys = [][]byte{make([]byte, 16)} }, nil},
		{"private IP without a key", func(c *Config) { c.BindAddr = "10.0.0.5:7946" }, []string{"10.0.0.5:7946 is not loopback-only"}},
		{"loopback bind, public advertise", func(c *Config) { c.BindAddr, c.AdvertiseAddr = "127.0.0.1:0", "192.0.2.1:7946" }, []string{EnvGossipKey}},
		{"ipv6 bind", func(c *Config) { c.BindAddr = "[::1]:0" }, nil},
		{"loopback seeds", func(c *Config) { c.BindAddr, c.Seeds = "127.0.0.1:0", []string{"10.0.0.1:7946", "seed.internal:7946"} }, nil},
		{"key 16", func(c *Config) { c.Keys = [][]byte{make([]byte, 16)} }, nil},
		{"keyring", func(c *Config) { c.Keys = [][]byte{make([]byte, 32), bytes.Repeat([]byte{1}, 16)} }, nil},
		{"cidrs", func(c *Config) {
			c.BindAddr, c.AllowedCIDRs = "127.0.0.1:0", []string{"127.0.0.0/8", "10.1.2.3/16", "fd00::/8"}
		}, nil},
		{"unknown profile", func(c *Config) { c.Profile = "lan2" }, []string{`Profile "lan2"`}},
		{"bind hostname", func(c *Config) { c.BindAddr = "localhost:7946" }, []string{`BindAddr "localhost:7946"`, "not an IP"}},
		{"bad cidr", func(c *Config) { c.BindAddr, c.AllowedCIDRs = "127.0.0.1:0", []string{"10.0.0.0/8", "10.0.0.1"} }, []string{`AllowedCIDRs[1] "10.0.0.1"`}},
		{"bind no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, []string{`BindAddr "127.0.0.1"`}},
		{"bind bad port", func(c *Config) { c.BindAddr = "127.0.0.1:99999" }, []string{`BindAddr`, `port "99999"`}},
		{"advertise", func(c *Config) { c.AdvertiseAddr = "nat:1" }, []string{`AdvertiseAddr "nat:1"`}},
		{"seed without port", func(c *Config) { c.Seeds = []string{"ok:1", "seed"} }, []string{`Seeds[1] "seed"`}},
		{"seed port 0", func(c *Config) { c.Seeds = []string{"h:0"} }, []string{`Seeds[0] "h:0"`}},
		{"seed no host", func(c *Config) { c.Seeds = []string{":7946"} }, []string{`Seeds[0] ":7946"`, "missing host"}},
		{"key length", func(c *Config) { c.Keys = [][]byte{make([]byte, 32), make([]byte, 10)} }, []string{"Keys[1]: 10 bytes"}},
		{"repeated key", func(c *Config) { c.Keys = [][]byte{make([]byte, 32), make([]byte, 32)} }, []string{"Keys[1] repeats Keys[0]"}},
		{"negative durations", func(c *Config) { c.JoinRetry, c.LeaveTimeout = -1, -time.Second },
			[]string{"JoinRetry -1ns", "LeaveTimeout -1s"}},
		{"retry cap below start", func(c *Config) { c.JoinRetry, c.JoinRetryMax = 2*time.Second, time.Second },
			[]string{"JoinRetryMax 1s is below JoinRetry 2s"}},
		{"several errors at once", func(c *Config) { c.Profile = "x"; c.Keys = [][]byte{{1}} },
			[]string{"Profile", "Keys[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config // Logger ignored
	}{
		{"zero is lan", Config{}, DefaultConfig()},
		{"local profile", Config{Profile: ProfileLocal}, LocalConfig()},
		{"wan profile", Config{Profile: ProfileWAN}, WANConfig()},
		{"explicit fields kept", Config{Profile: ProfileLocal, BindAddr: "127.0.0.1:7000", LeaveTimeout: time.Minute},
			func() Config {
				c := LocalConfig()
				c.BindAddr = "127.0.0.1:7000"
				c.LeaveTimeout = time.Minute
				return c
			}()},
		{"retry cap raised to the start", Config{JoinRetry: time.Hour},
			func() Config { c := DefaultConfig(); c.JoinRetry, c.JoinRetryMax = time.Hour, time.Hour; return c }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			if got.Logger == nil {
				t.Error("Logger not defaulted")
			}
			got.Logger = nil
			got.Seeds, got.Keys, got.AllowedCIDRs = nil, nil, nil
			if g, w := mustJSON(t, got), mustJSON(t, tt.want); g != w {
				t.Errorf("withDefaults() = %s, want %s", g, w)
			}
		})
	}
}

func TestConfigJSONKeepsKeyOut(t *testing.T) {
	c := LocalConfig()
	c.Keys = [][]byte{[]byte("0123456789abcdef")}
	c.Seeds = []string{"127.0.0.1:7946"}
	s := mustJSON(t, c)
	if strings.Contains(s, "eys") || strings.Contains(s, base64.StdEncoding.EncodeToString(c.Keys[0])) {
		t.Errorf("JSON leaks the key: %s", s)
	}
	var back Config
	if err := json.Unmarshal([]byte(s), &back); err != nil {
		t.Fatal(err)
	}
	if back.BindAddr != c.BindAddr || back.JoinRetry != c.JoinRetry || back.Seeds[0] != c.Seeds[0] {
		t.Errorf("JSON round trip lost fields: %s -> %+v", s, back)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKeysFromEnv(t *testing.T) {
	key16 := []byte("0123456789abcdef")
	key32 := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name     string
		env      map[string]string
		wantLens []int
		wantErr  string
	}{
		{"unset", nil, nil, ""},
		{"empty", map[string]string{EnvGossipKey: ""}, nil, ""},
		{"padded", map[string]string{EnvGossipKey: b64(key16)}, []int{16}, ""},
		{"unpadded", map[string]string{EnvGossipKey: base64.RawStdEncoding.EncodeToString(key16)}, []int{16}, ""},
		{"32 bytes", map[string]string{EnvGossipKey: b64(make([]byte, 32))}, []int{32}, ""},
		{"keyring, primary first", map[string]string{EnvGossipKey: b64(key32) + ", " + b64(key16)}, []int{32, 16}, ""},
		{"not base64", map[string]string{EnvGossipKey: "not*base64!"}, nil, "SHOAL_GOSSIP_KEY key 1 is not valid base64"},
		{"wrong length", map[string]string{EnvGossipKey: b64(key16) + "," + b64([]byte("short"))}, nil, "SHOAL_GOSSIP_KEY key 2 decodes to 5 bytes"},
		{"empty entry", map[string]string{EnvGossipKey: b64(key16) + ","}, nil, "key 2"},
		{"repeated", map[string]string{EnvGossipKey: b64(key16) + "," + b64(key16)}, nil, "key 2 repeats key 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := KeysFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("KeysFromEnv() error = %v, want %q", err, tt.wantErr)
				}
				for _, v := range strings.Split(tt.env[EnvGossipKey], ",") {
					if v != "" && strings.Contains(err.Error(), v) {
						t.Errorf("error %q echoes the secret", err)
					}
				}
				return
			}
			if err != nil || len(keys) != len(tt.wantLens) {
				t.Fatalf("KeysFromEnv() = %d keys, %v; want %d", len(keys), err, len(tt.wantLens))
			}
			for i, k := range keys {
				if len(k) != tt.wantLens[i] {
					t.Errorf("key %d is %d bytes, want %d", i, len(k), tt.wantLens[i])
				}
			}
		})
	}
}

// TestNewKeyEncodeKeys: what the supervisor generates is what processes
// read back.
func TestNewKeyEncodeKeys(t *testing.T) {
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("NewKey: %d bytes, two equal keys: %v", len(a), bytes.Equal(a, b))
	}
	keys, err := KeysFromEnv(func(string) string { return EncodeKeys(a, b) })
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], a) || !bytes.Equal(keys[1], b) {
		t.Fatalf("KeysFromEnv(EncodeKeys(a, b)) = %d keys, %v", len(keys), err)
	}
}

func TestMemberlistConfig(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		wantBind      string
		wantPort      int
		wantAdvertise string
		wantAdvPort   int
		wantProbe     time.Duration
	}{
		{"local", LocalConfig(), "127.0.0.1", 0, "", 0, 400 * time.Millisecond},
		{"lan", DefaultConfig(), "0.0.0.0", 7946, "", 7946, time.Second},
		{"wan", WANConfig(), "0.0.0.0", 7946, "", 7946, 5 * time.Second},
		{"fixed port", Config{BindAddr: "127.0.0.1:7001"}, "127.0.0.1", 7001, "", 7001, time.Second},
		{"advertise", Config{BindAddr: "0.0.0.0:7001", AdvertiseAddr: "192.0.2.1:9000"}, "0.0.0.0", 7001, "192.0.2.1", 9000, time.Second},
		{"advertise port 0", Config{BindAddr: "0.0.0.0:7001", AdvertiseAddr: "192.0.2.1:0"}, "0.0.0.0", 7001, "192.0.2.1", 7001, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := tt.cfg.withDefaults().memberlistConfig("node-1")
			if mc.Name != "node-1" || mc.BindAddr != tt.wantBind || mc.BindPort != tt.wantPort ||
				mc.AdvertiseAddr != tt.wantAdvertise || mc.AdvertisePort != tt.wantAdvPort || mc.ProbeInterval != tt.wantProbe {
				t.Errorf("got name %q bind %s:%d advertise %s:%d probe %v", mc.Name, mc.BindAddr, mc.BindPort,
					mc.AdvertiseAddr, mc.AdvertisePort, mc.ProbeInterval)
			}
			// Lifeguard stays on in every profile.
			if mc.AwarenessMaxMultiplier <= 1 || mc.SuspicionMaxTimeoutMult <= 1 {
				t.Errorf("Lifeguard off: awareness %d, suspicion max mult %d", mc.AwarenessMaxMultiplier, mc.SuspicionMaxTimeoutMult)
			}
			if mc.Logger == nil || mc.LogOutput != nil {
				t.Error("memberlist logs not routed to slog")
			}
		})
	}
}

func TestMemberlistKeyringAndCIDRs(t *testing.T) {
	primary, secondary := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	c := LocalConfig()
	c.Keys = [][]byte{primary, secondary}
	c.AllowedCIDRs = []string{"127.0.0.1/8", "fd00::/8"}
	mc := c.withDefaults().memberlistConfig("n")
	if mc.Keyring == nil || !bytes.Equal(mc.Keyring.GetPrimaryKey(), primary) || len(mc.Keyring.GetKeys()) != 2 {
		t.Fatalf("keyring: %v", mc.Keyring)
	}
	if !mc.GossipVerifyIncoming || !mc.GossipVerifyOutgoing {
		t.Error("unencrypted gossip would still be accepted")
	}
	if len(mc.CIDRsAllowed) != 2 || mc.CIDRsAllowed[0].String() != "127.0.0.0/8" || mc.CIDRsAllowed[1].String() != "fd00::/8" {
		t.Errorf("CIDRsAllowed = %v", mc.CIDRsAllowed)
	}
	for ip, want := range map[string]bool{"127.0.0.9": true, "10.0.0.1": false, "fd00::1": true} {
		if err := mc.IPAllowed(net.ParseIP(ip)); (err == nil) != want {
			t.Errorf("IPAllowed(%s) = %v, want allowed %v", ip, err, want)
		}
	}
	if mc := LocalConfig().withDefaults().memberlistConfig("n"); mc.Keyring != nil || mc.CIDRsAllowed != nil {
		t.Error("no keys and no CIDRs configured, yet memberlist gets some")
	}
}

// The local profile must detect a crash well within 5 s even in the worst
// case without Lifeguard confirmations (see localMemberlist).
func TestLocalProfileWorstCaseDetection(t *testing.T) {
	mc := localMemberlist()
	for _, n := range []int{3, 11, 30} {
		minTimeout := time.Duration(float64(mc.SuspicionMult) * max(1, math.Log10(float64(n))) * float64(mc.ProbeInterval))
		maxTimeout := time.Duration(mc.SuspicionMaxTimeoutMult) * minTimeout
		worst := 2*mc.ProbeInterval + maxTimeout + 3*mc.GossipInterval
		t.Logf("n=%d: suspicion %v..%v, worst-case detection ≈ %v", n, minTimeout, maxTimeout, worst)
		if n <= 11 && worst > 4*time.Second {
			t.Errorf("n=%d: worst-case detection %v leaves no margin under 5 s", n, worst)
		}
		if minTimeout < time.Second {
			t.Errorf("n=%d: suspicion min %v gives a healthy member too little time to refute", n, minTimeout)
		}
	}
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w := logWriter{l}
	if _, err := w.Write([]byte("[WARN] memberlist: Refuting a suspect message (from: b)\n")); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	for _, want := range []string{"level=DEBUG", `msg="Refuting a suspect message (from: b)"`, "component=memberlist", "memberlist_level=WARN"} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %q lacks %q", got, want)
		}
	}
	buf.Reset()
	quiet := logWriter{slog.New(slog.NewTextHandler(&buf, nil))}
	_, _ = quiet.Write([]byte("[DEBUG] memberlist: chatter\n"))
	if buf.Len() != 0 {
		t.Errorf("debug line logged at info level: %q", buf.String())
	}
}

func TestRemovalBound(t *testing.T) {
	for _, c := range []struct {
		profile string
		n       int
		lo, hi  time.Duration
	}{
		{ProfileLocal, 10, 3 * time.Second, 4 * time.Second}, // 0.8 + 2.4 + 0.5
		{ProfileLAN, 20, 33 * time.Second, 35 * time.Second}, // 2 + 31.2 + 1
		{ProfileLAN, 5, 26 * time.Second, 27 * time.Second},  // 2 + 24 + 1
		{ProfileWAN, 5, 60 * time.Second, 200 * time.Second}, // slow links: a minute or more
	} {
		if got := RemovalBound(c.profile, c.n); got < c.lo || got > c.hi {
			t.Errorf("RemovalBound(%q, %d) = %v, want %v to %v", c.profile, c.n, got, c.lo, c.hi)
		}
	}
}
