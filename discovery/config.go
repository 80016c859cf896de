package discovery

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles select memberlist's timing presets. See [Config.Profile].
const (
	ProfileLocal = "local" // one machine, loopback: fast failure detection
	ProfileLAN   = "lan"   // one data centre (the default)
	ProfileWAN   = "wan"   // high-latency links
)

// EnvGossipKey is the environment variable [KeysFromEnv] reads.
const EnvGossipKey = "SHOAL_GOSSIP_KEY"

// Config configures a [Member]. Its zero value is usable: every zero field
// takes the value of the chosen profile's preset ([DefaultConfig] for "lan",
// [LocalConfig], [WANConfig]) when the member is created.
type Config struct {
	// BindAddr is the "ip:port" that gossip listens on, over both UDP and
	// TCP. Port 0 picks a free port; read it from [Member.GossipAddr].
	// Default: "0.0.0.0:7946" (memberlist's port) for "lan" and "wan",
	// "127.0.0.1:0" for "local".
	BindAddr string `json:"bind_addr,omitempty" yaml:"bind_addr,omitempty"`

	// AdvertiseAddr is the "ip:port" peers should use to reach this member,
	// when it differs from BindAddr (NAT, containers). Port 0 means the
	// bound port. Empty: memberlist picks the bound address, or a private
	// interface address when bound to 0.0.0.0.
	AdvertiseAddr string `json:"advertise_addr,omitempty" yaml:"advertise_addr,omitempty"`

	// Seeds are "host:port" gossip addresses of any existing members. One
	// answering seed is enough to join. Empty: this member starts a cluster
	// and waits for others to join it. Its own address may be listed (all
	// instances can share one seed list); it is skipped.
	Seeds []string `json:"seeds,omitempty" yaml:"seeds,omitempty"`

	// Profile is "local", "lan" (default) or "wan": memberlist's
	// DefaultLocalConfig, DefaultLANConfig or DefaultWANConfig, with the
	// Lifeguard extensions on. "local" is further tuned; see [LocalConfig].
	Profile string `json:"profile,omitempty" yaml:"profile,omitempty"`

	// Keys is the gossip keyring, primary first. The primary key encrypts
	// and authenticates all gossip (AES-GCM); every key is tried to decrypt,
	// which is what lets a key be rotated without a partition (see the
	// package doc). Each key is 16, 24 or 32 bytes. Members that hold none of
	// the keys in use cannot join or be heard. Required unless gossip stays
	// on loopback (BindAddr and AdvertiseAddr loopback IPs). Never read from
	// or written to config files: load it with [KeysFromEnv].
	Keys [][]byte `json:"-" yaml:"-"`

	// AllowedCIDRs, when set, lists the networks ("10.0.0.0/16",
	// "fd00::/8") members may gossip from and advertise HTTP addresses in.
	// Gossip from elsewhere is ignored, and a record whose HTTP address is
	// outside them, or is a host name, is kept out of the catalog.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty" yaml:"allowed_cidrs,omitempty"`

	// ServeOnOtherIP lets members advertise an HTTP address on another IP
	// than their gossip address (hosts whose service and gossip traffic use
	// different interfaces). By default a member gossiping from a
	// non-loopback IP must serve on that same IP, and one gossiping on
	// loopback must serve on loopback; records that do not are kept out of
	// the catalog.
	ServeOnOtherIP bool `json:"serve_on_other_ip,omitempty" yaml:"serve_on_other_ip,omitempty"`

	// JoinRetry is the first wait before trying the seeds again while none
	// answers; each further failure doubles it, up to JoinRetryMax. Joining
	// goes on in the background, so a service may start before its seeds.
	JoinRetry time.Duration `json:"join_retry,omitempty" yaml:"join_retry,omitempty"`

	// JoinRetryMax caps the join backoff. It is also how often a member that
	// has lost every peer tries its seeds again.
	JoinRetryMax time.Duration `json:"join_retry_max,omitempty" yaml:"join_retry_max,omitempty"`

	// ReconnectInterval is how often a member tries to reach one member
	// it lost to a failure (not a leave), for 30 minutes after the loss:
	// what merges the two sides of a healed network partition, which
	// otherwise each think the other dead.
	ReconnectInterval time.Duration `json:"reconnect_interval,omitempty" yaml:"reconnect_interval,omitempty"`

	// LeaveTimeout bounds how long shutdown waits for the leave message to
	// be broadcast before closing the gossip sockets anyway.
	LeaveTimeout time.Duration `json:"leave_timeout,omitempty" yaml:"leave_timeout,omitempty"`

	// Logger receives this package's logs, and memberlist's (at debug level:
	// they are chatty). Nil means slog.Default().
	Logger *slog.Logger `json:"-" yaml:"-"`
}

// DefaultConfig returns the preset for members spread over a LAN, one
// member per host (or per pod IP): memberlist's LAN timings on port 7946.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0:7946",
		Profile:           ProfileLAN,
		JoinRetry:         time.Second,
		JoinRetryMax:      30 * time.Second,
		ReconnectInterval: 2 * time.Second,
		LeaveTimeout:      5 * time.Second,
	}
}

// LocalConfig returns the preset for many members on one machine (shoal up,
// tests): loopback, a free port each, and failure detection tuned so a
// crashed member leaves every catalog in well under 5 s. Compared with
// memberlist's DefaultLocalConfig it probes every 400 ms (not 1 s), caps
// Lifeguard's suspicion timeout at 2× its minimum (not 6×) and disables
// compression: with up to ~11 members a suspected member has 1.2–2.5 s to
// refute, and a crash is detected in about 2–3.6 s.
func LocalConfig() Config {
	return Config{
		BindAddr:          "127.0.0.1:0",
		Profile:           ProfileLocal,
		JoinRetry:         50 * time.Millisecond,
		JoinRetryMax:      time.Second,
		ReconnectInterval: time.Second,
		LeaveTimeout:      2 * time.Second,
	}
}

// WANConfig returns the preset for members across high-latency links.
func WANConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0:7946",
		Profile:           ProfileWAN,
		JoinRetry:         2 * time.Second,
		JoinRetryMax:      60 * time.Second,
		ReconnectInterval: 10 * time.Second,
		LeaveTimeout:      10 * time.Second,
	}
}

// Validate reports every invalid field, naming it and its value. Zero fields
// are valid: they take the profile's defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("discovery: config: "+format, args...))
	}
	switch c.Profile {
	case "", ProfileLocal, ProfileLAN, ProfileWAN:
	default:
		bad("Profile %q is unknown (want %q, %q or %q)", c.Profile, ProfileLocal, ProfileLAN, ProfileWAN)
	}
	if c.BindAddr != "" {
		if err := checkIPPort(c.BindAddr); err != nil {
			bad("BindAddr %q: %v", c.BindAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		if err := checkIPPort(c.AdvertiseAddr); err != nil {
			bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		}
	}
	for i, s := range c.Seeds {
		host, port, err := net.SplitHostPort(s)
		if err == nil && host == "" {
			err = errors.New("missing host")
		}
		if err == nil {
			err = checkPort(port, false)
		}
		if err != nil {
			bad("Seeds[%d] %q is not host:port: %v", i, s, err)
		}
	}
	for i, k := range c.Keys {
		if err := checkKey(k); err != nil {
			bad("Keys[%d]: %v", i, err)
		}
		for j := range i {
			if bytes.Equal(c.Keys[j], k) {
				bad("Keys[%d] repeats Keys[%d]", i, j)
			}
		}
	}
	if len(c.Keys) == 0 && !c.loopbackOnly() {
		errs = append(errs, fmt.Errorf("discovery: config: gossip on %s is not loopback-only: %w", c.bindAddr(), ErrUnencrypted))
	}
	for i, s := range c.AllowedCIDRs {
		if _, err := netip.ParsePrefix(s); err != nil {
			bad("AllowedCIDRs[%d] %q is not a CIDR: %v", i, s, err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"JoinRetry", c.JoinRetry}, {"JoinRetryMax", c.JoinRetryMax}, {"ReconnectInterval", c.ReconnectInterval}, {"LeaveTimeout", c.LeaveTimeout}} {
		if d.v < 0 {
			bad("%s %v must not be negative", d.name, d.v)
		}
	}
	if c.JoinRetry > 0 && c.JoinRetryMax > 0 && c.JoinRetryMax < c.JoinRetry {
		bad("JoinRetryMax %v is below JoinRetry %v", c.JoinRetryMax, c.JoinRetry)
	}
	return errors.Join(errs...)
}

// ErrUnencrypted is the error Validate and New return when gossip would
// leave the machine without a key.
var ErrUnencrypted = errors.New("gossip off loopback must be encrypted: set " + EnvGossipKey +
	" to a base64 key of 16, 24 or 32 random bytes (several, comma-separated, primary first, while rotating); `openssl rand -base64 32` makes one")

// loopbackOnly reports whether gossip stays on this machine: the bind
// address (the profile's default when empty) and the advertise address, if
// any, are loopback IPs.
func (c Config) loopbackOnly() bool {
	for _, a := range []string{c.bindAddr(), c.AdvertiseAddr} {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// bindAddr is BindAddr, or the profile's default when empty.
func (c Config) bindAddr() string {
	if c.BindAddr != "" {
		return c.BindAddr
	}
	switch c.Profile {
	case ProfileLocal:
		return LocalConfig().BindAddr
	case ProfileWAN:
		return WANConfig().BindAddr
	}
	return DefaultConfig().BindAddr
}

func checkKey(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%d bytes; want 16, 24 or 32 (AES-128, AES-192, AES-256)", len(k))
}

func checkIPPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	return checkPort(port, true)
}

// withDefaults fills zero fields from the profile's preset.
func (c Config) withDefaults() Config {
	var p Config
	switch c.Profile {
	case ProfileLocal:
		p = LocalConfig()
	case ProfileWAN:
		p = WANConfig()
	default:
		p = DefaultConfig()
	}
	if c.Profile == "" {
		c.Profile = p.Profile
	}
	if c.BindAddr == "" {
		c.BindAddr = p.BindAddr
	}
	if c.JoinRetry == 0 {
		c.JoinRetry = p.JoinRetry
	}
	if c.JoinRetryMax == 0 {
		c.JoinRetryMax = p.JoinRetryMax
	}
	c.JoinRetryMax = max(c.JoinRetryMax, c.JoinRetry)
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = p.LeaveTimeout
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = p.ReconnectInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Seeds = append([]string(nil), c.Seeds...)
	c.AllowedCIDRs = append([]string(nil), c.AllowedCIDRs...)
	keys := make([][]byte, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = append([]byte(nil), k...)
	}
	c.Keys = keys
	return c
}

// KeysFromEnv reads the gossip keyring from SHOAL_GOSSIP_KEY through getenv
// (os.Getenv in production): one key, or several separated by commas,
// primary first, each standard base64 (padded or not) of 16, 24 or 32
// bytes. It returns nil, nil when the variable is unset or empty. Errors
// name the variable and the key's position but never echo a value.
func KeysFromEnv(getenv func(string) string) ([][]byte, error) {
	v := getenv(EnvGossipKey)
	if v == "" {
		return nil, nil
	}
	var keys [][]byte
	for i, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		key, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(s)
		}
		if err != nil {
			return nil, fmt.Errorf("discovery: %s key %d is not valid base64 (%d characters)", EnvGossipKey, i+1, len(s))
		}
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("discovery: %s key %d decodes to %w", EnvGossipKey, i+1, err)
		}
		for j, k := range keys {
			if bytes.Equal(k, key) {
				return nil, fmt.Errorf("discovery: %s key %d repeats key %d", EnvGossipKey, i+1, j+1)
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// NewKey returns a new random 32-byte (AES-256) gossip key.
func NewKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("discovery: new gossip key: %w", err)
	}
	return k, nil
}

// EncodeKeys returns the SHOAL_GOSSIP_KEY value for a keyring, primary
// first: what the supervisor hands every process of a system.
func EncodeKeys(keys ...[]byte) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = base64.StdEncoding.EncodeToString(k)
	}
	return strings.Join(s, ",")
}

// memberlistConfig translates c (defaults applied, validated) into
// memberlist's configuration for the node called name.
func (c Config) memberlistConfig(name string) *memberlist.Config {
	var mc *memberlist.Config
	switch c.Profile {
	case ProfileLocal:
		mc = localMemberlist()
	case ProfileWAN:
		mc = memberlist.DefaultWANConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = name

	host, port, _ := net.SplitHostPort(c.BindAddr) // validated
	mc.BindAddr = host
	mc.BindPort, _ = strconv.Atoi(port)
	// memberlist advertises port 7946 unless told otherwise; with port 0 it
	// substitutes the port it bound.
	mc.AdvertisePort = mc.BindPort
	if c.AdvertiseAddr != "" {
		host, port, _ := net.SplitHostPort(c.AdvertiseAddr)
		mc.AdvertiseAddr = host
		if p, _ := strconv.Atoi(port); p != 0 {
			mc.AdvertisePort = p
		}
	}
	if len(c.Keys) > 0 {
		// Validated: NewKeyring cannot fail on these.
		mc.Keyring, _ = memberlist.NewKeyring(c.Keys, c.Keys[0])
	}
	for _, p := range newAddrRule(c).cidrs {
		mc.CIDRsAllowed = append(mc.CIDRsAllowed, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{c.Logger}, "", 0)
	return mc
}

// localMemberlist is memberlist's DefaultLocalConfig tuned for 10–30 members
// on one loaded machine (2 cores, -race), where a crashed member must leave
// every catalog within 5 s and no healthy member may be declared dead.
//
// Detection time after a crash is about
//
//	time until a survivor probes it      ≤ ProbeInterval on average with ≥ 2 survivors
//	+ that probe failing                 = ProbeInterval (the probe's deadline; ProbeTimeout ends the direct part)
//	+ suspicion timeout                  min..max, see below
//	+ spreading the dead message         a few GossipIntervals
//
// memberlist's suspicion timeout is min = SuspicionMult × max(1, log10 n) ×
// ProbeInterval; Lifeguard starts the timer at max = SuspicionMaxTimeoutMult
// × min and shrinks it to min as k = SuspicionMult−2 other members confirm
// the suspicion. With ProbeInterval 400 ms and SuspicionMult 3: min = 1.2 s
// for n ≤ 10 and 1.25 s for n = 11 (k = 1); max = 2 × min = 2.5 s. Typical
// detection is then 0.4 + 0.4 + 1.25 + 0.2 ≈ 2.3 s and the unconfirmed worst
// case 0.4 + 0.4 + 2.5 + 0.3 ≈ 3.6 s: inside 5 s with margin. (Memberlist's
// own local preset, 1 s probes and max multiplier 6, has a suspicion
// timeout of 3.1–18.7 s alone.)
//
// False positives: a healthy member is only declared dead if it cannot
// refute a suspicion for ≥ min (1.2 s), while suspect messages reach it
// within a gossip round or two (100 ms each); ProbeTimeout 200 ms tolerates
// scheduler stalls on a busy race-enabled test run, and two indirect probes
// (instead of one) mean one slow relay cannot turn a missed direct ack into a
// suspicion.
// AwarenessMaxMultiplier 4 keeps Lifeguard's self-awareness (a struggling
// member probes less often) while capping its probe interval at 1.6 s.
// Compression is off: compressing every packet was the largest CPU cost of
// a loopback cluster under -race, and on a starved machine it slowed gossip
// enough to delay joins past 2 s.
func localMemberlist() *memberlist.Config {
	mc := memberlist.DefaultLocalConfig()
	mc.ProbeInterval = 400 * time.Millisecond
	mc.ProbeTimeout = 200 * time.Millisecond
	mc.IndirectChecks = 2
	mc.SuspicionMult = 3
	mc.SuspicionMaxTimeoutMult = 2
	mc.AwarenessMaxMultiplier = 4
	mc.GossipInterval = 100 * time.Millisecond
	mc.GossipNodes = 3
	mc.RetransmitMult = 3                 // one more copy of each update: loopback UDP can still drop under load
	mc.PushPullInterval = 5 * time.Second // anti-entropy repairs any update gossip lost
	mc.TCPTimeout = 2 * time.Second
	mc.EnableCompression = false // saves CPU on a busy machine; loopback has bandwidth to spare
	return mc
}

// RemovalBound is the longest a crashed member (or a host cut off) stays in
// the catalogs of a cluster of n members with profile's timings, without
// packet loss among the survivors: a survivor probes it within a probe
// interval, the probe fails within another, the suspicion runs for
// Lifeguard's longest timeout (SuspicionMaxTimeoutMult × SuspicionMult ×
// max(1, log10 n) × ProbeInterval; confirmations from other members, the
// common case, shorten it to its minimum, a sixth of that with the LAN
// preset), and the dead message spreads in a few gossip rounds (counted as
// five). For "lan" and 20 members: 2 × 1 s + 6 × 5.2 s + 5 × 200 ms ≈ 34 s
// at worst; typically 7–9 s.
func RemovalBound(profile string, n int) time.Duration {
	mc := Config{Profile: profile, Logger: slog.New(slog.DiscardHandler)}.withDefaults().memberlistConfig("bound")
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	minSuspicion := time.Duration(float64(mc.SuspicionMult) * scale * float64(mc.ProbeInterval))
	return 2*mc.ProbeInterval + time.Duration(mc.SuspicionMaxTimeoutMult)*minSuspicion + 5*mc.GossipInterval
}
