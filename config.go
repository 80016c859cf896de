package shoal

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

// Config describes one instance of a service. The zero value plus a Name is
// enough; everything else has a default that works on one machine.
type Config struct {
	// Name is the service name callers use: http://<Name>/path. Required.
	Name string `json:"name" yaml:"name"`
	// ID identifies this instance; default <Name>-<random hex>.
	ID string `json:"id" yaml:"id"`
	// Version is shown in discovery and /infoz.
	Version string `json:"version" yaml:"version"`
	// Addr is the HTTP listen address; default 127.0.0.1:0 (a free port).
	Addr string `json:"addr" yaml:"addr"`
	// AdvertiseAddr is the address peers call; default the listen address,
	// or the gossip address's host when listening on all interfaces.
	AdvertiseAddr string `json:"advertise_addr" yaml:"advertise_addr"`
	// AdminAddr is where the admin endpoints listen: /healthz, /readyz,
	// /infoz, /metrics and /debug/pprof/, which the service's own listener
	// never serves. Default 127.0.0.1:0. It is plain HTTP; health,
	// readiness, information and metrics ask for no credentials, so keep it
	// on loopback, or on a network only operators and the platform's probes
	// reach (a pod's, say). Profiles answer only a bearer of a profile token
	// signed with the operator's key (FaultKey; shoal profile signs one).
	AdminAddr string `json:"admin_addr" yaml:"admin_addr"`
	// GossipAddr is the gossip bind address; default 127.0.0.1:0.
	GossipAddr string `json:"gossip_addr" yaml:"gossip_addr"`
	// GossipAdvertiseAddr is the gossip address other members reach this
	// one at, when it differs from GossipAddr (bound to 0.0.0.0, NAT); port
	// 0 means the bound port. Default: POD_IP's value (Kubernetes) if set,
	// else the bound address (memberlist picks a private interface's IP
	// when bound to 0.0.0.0). Its host is also AdvertiseAddr's default host
	// when the HTTP listener is on every interface.
	GossipAdvertiseAddr string `json:"gossip_advertise_addr" yaml:"gossip_advertise_addr"`
	// Seeds are gossip addresses of any members already running.
	Seeds []string `json:"seeds" yaml:"seeds"`
	// GossipProfile is "local", "lan" or "wan"; default local when gossip
	// binds to loopback, lan otherwise.
	GossipProfile string `json:"gossip_profile" yaml:"gossip_profile"`
	// DrainTimeout bounds the whole graceful shutdown; default 10s.
	DrainTimeout time.Duration `json:"drain_timeout" yaml:"drain_timeout"`
	// PrepareTimeout bounds what Service.Prepare runs before the instance
	// serves (opening a database, loading a dataset); default 30s.
	PrepareTimeout time.Duration `json:"prepare_timeout" yaml:"prepare_timeout"`

	// Identity is who the instance is and who may call it: with its
	// certificate files set (shoal up sets them), the listener serves
	// mutual TLS only, every request must come from a service of the
	// system the policy allows or carry a valid user token, and every call
	// the client makes is mutual TLS. See Identity.
	Identity Identity `json:"identity" yaml:"identity"`

	// TLSCertFile and TLSKeyFile, both or neither, name a PEM certificate
	// (chain) and its private key: the listener then serves HTTPS only, with
	// HTTP/1.1 and HTTP/2 (ALPN), admin endpoints included. They are read
	// once, by New; a renewed certificate takes a (rolling) restart.
	//
	// TLS is for the edge: the gateway, which browsers and the outside call
	// (Identity.Edge). Peers call a service by name with its identity
	// instead, so a service that others call must not set it.
	TLSCertFile string `json:"tls_cert_file" yaml:"tls_cert_file"`
	TLSKeyFile  string `json:"tls_key_file" yaml:"tls_key_file"`
	// H2C also serves HTTP/2 without TLS (prior knowledge, as gRPC clients
	// and h2c transports speak it) beside HTTP/1.1 on the same listener.
	// With a TLS certificate it changes nothing: HTTP/2 comes with TLS.
	H2C bool `json:"h2c" yaml:"h2c"`
	// ReadHeaderTimeout bounds the time a client may take to send a
	// request's headers (slow clients, slowloris); default 5s.
	ReadHeaderTimeout time.Duration `json:"read_header_timeout" yaml:"read_header_timeout"`
	// MaxHeaderBytes bounds the size of a request's headers; larger ones
	// are answered 431. Default 1 MiB.
	MaxHeaderBytes int `json:"max_header_bytes" yaml:"max_header_bytes"`

	// Calls lists the services this one calls by name. An instance reports
	// ready (GET /readyz) only once its discovery view holds a serving
	// instance of each, or DependencyWait has passed: callers are not sent
	// to an instance that would answer "no instances known" for lack of
	// gossip. The services Client.Dependencies names (so a manifest's
	// dependencies:) count too.
	Calls []string `json:"calls" yaml:"calls"`
	// DependencyWait bounds that wait; default 20s. A dependency still
	// missing then is logged and shown in /readyz and /infoz, and the
	// instance reports ready without it: one service down must not keep
	// every caller from starting.
	DependencyWait time.Duration `json:"dependency_wait" yaml:"dependency_wait"`

	// FaultKey is the operator's public key (base64 Ed25519, as shoal up
	// sets SHOAL_FAULT_KEY): requests carrying a Shoal-Fault token it
	// verifies get that token's faults (see package chaos). Empty, the
	// default, honours no fault.
	FaultKey string `json:"fault_key" yaml:"fault_key"`

	// Client is the policy of Service.Client; zero means client.DefaultConfig.
	Client client.Config `json:"client" yaml:"client"`
	// Admission is the adaptive concurrency limit on requests to the user's
	// handler (admin paths are never limited); zero means
	// resilience.DefaultLimiterConfig. Requests over the limit get 503 with
	// Retry-After, fast, so that callers fail over to another instance.
	Admission resilience.LimiterConfig `json:"admission" yaml:"admission"`
	// Logger receives the SDK's logs; default JSON to stderr. Lines logged
	// with a request's context carry its trace_id, span_id and request_id
	// (telemetry.NewLogHandler).
	Logger *slog.Logger `json:"-" yaml:"-"`
	// TracerProvider records the service's spans: a server span per
	// request, a client span per call (see the client package). Nil means
	// the standard OTEL_* environment's (telemetry.NewTracing: none unless
	// it names an OTLP endpoint, as shoal up does), which the Service
	// starts and flushes as it drains; a provider set here is the
	// caller's to flush and shut down.
	TracerProvider trace.TracerProvider `json:"-" yaml:"-"`
	// Engine, if set, serves the plain-HTTP listener in place of the
	// net/http server, which it is given to hand over what it does not
	// serve itself (the gateway's HTTP/1.1 engine, gateway.Engine). Not
	// used with a TLS certificate.
	Engine Engine `json:"-" yaml:"-"`
}

// Engine serves an instance's listener instead of its *http.Server, with
// that server's handler and limits. Serve returns http.ErrServerClosed once
// Shutdown (or Close) has been called; Shutdown drains like
// http.Server.Shutdown, shutting srv down too.
type Engine interface {
	Serve(ln net.Listener, srv *http.Server) error
	Shutdown(ctx context.Context) error
	Close() error
}

// Environment variables read by FromEnv. PORT is honoured for platforms that
// assign one (it means listening on all interfaces, on that port).
const (
	EnvName          = "SHOAL_NAME"
	EnvID            = "SHOAL_INSTANCE"
	EnvVersion       = "SHOAL_VERSION"
	EnvAddr          = "SHOAL_ADDR"
	EnvPort          = "PORT"
	EnvAdvertiseAddr = "SHOAL_ADVERTISE_ADDR"
	EnvGossipAddr    = "SHOAL_GOSSIP_ADDR"
	// EnvGossipAdvertiseAddr sets Config.GossipAdvertiseAddr.
	EnvGossipAdvertiseAddr = "SHOAL_GOSSIP_ADVERTISE_ADDR"
	// EnvPodIP is the pod's IP on Kubernetes (the downward API's
	// status.podIP): the address advertised when no other is set.
	EnvPodIP         = "POD_IP"
	EnvAdminAddr     = "SHOAL_ADMIN_ADDR"
	EnvSeeds         = "SHOAL_SEEDS"
	EnvGossipProfile = "SHOAL_GOSSIP_PROFILE"
	EnvDrainTimeout  = "SHOAL_DRAIN_TIMEOUT"
	EnvAdmission     = "SHOAL_ADMISSION" // "off" disables admission control, "on" enables it
	EnvTLSCertFile   = "SHOAL_TLS_CERT_FILE"
	EnvTLSKeyFile    = "SHOAL_TLS_KEY_FILE"
	EnvH2C           = "SHOAL_H2C" // "on" serves HTTP/2 without TLS too, "off" does not
	EnvFaultKey      = chaos.EnvKey

	EnvReadHeaderTimeout = "SHOAL_READ_HEADER_TIMEOUT"
	EnvMaxHeaderBytes    = "SHOAL_MAX_HEADER_BYTES"
	EnvPrepareTimeout    = "SHOAL_PREPARE_TIMEOUT"
	EnvDependencyWait    = "SHOAL_DEPENDENCY_WAIT"
	// EnvDependencies holds client policies by service name, as JSON
	// (durations in nanoseconds); shoal up sets it from the manifest's
	// dependencies:. They override the code's Client.Dependencies field by
	// field.
	EnvDependencies = "SHOAL_DEPENDENCIES"
)

// Defaults of the fields they name.
const (
	defaultDrainTimeout      = 10 * time.Second
	defaultDependencyWait    = 20 * time.Second
	defaultPrepareTimeout    = 30 * time.Second
	defaultReadHeaderTimeout = 5 * time.Second
	defaultMaxHeaderBytes    = 1 << 20
)

// FromEnv overrides c with the SHOAL_* variables that are set. getenv is
// usually os.Getenv. Errors name the variable and its value.
func (c *Config) FromEnv(getenv func(string) string) error {
	str := func(key string, dst *string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	str(EnvName, &c.Name)
	str(EnvID, &c.ID)
	str(EnvVersion, &c.Version)
	if p := getenv(EnvPort); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s=%q: want a port number 0-65535", EnvPort, p)
		}
		c.Addr = ":" + p
	}
	str(EnvAddr, &c.Addr) // explicit beats PORT
	str(EnvAdvertiseAddr, &c.AdvertiseAddr)
	str(EnvGossipAddr, &c.GossipAddr)
	if ip := getenv(EnvPodIP); ip != "" && c.GossipAdvertiseAddr == "" {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%s=%q: want the pod's IP address", EnvPodIP, ip)
		}
		c.GossipAdvertiseAddr = net.JoinHostPort(ip, "0")
	}
	str(EnvGossipAdvertiseAddr, &c.GossipAdvertiseAddr) // explicit beats POD_IP
	str(EnvAdminAddr, &c.AdminAddr)
	if err := c.Identity.fromEnv(getenv); err != nil {
		return err
	}
	str(EnvGossipProfile, &c.GossipProfile)
	if v := getenv(EnvSeeds); v != "" {
		c.Seeds = splitList(v)
	}
	for _, e := range []struct {
		key string
		dst *time.Duration
	}{{EnvDrainTimeout, &c.DrainTimeout}, {EnvReadHeaderTimeout, &c.ReadHeaderTimeout}, {EnvDependencyWait, &c.DependencyWait}, {EnvPrepareTimeout, &c.PrepareTimeout}} {
		if v := getenv(e.key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q: want a duration such as 10s", e.key, v)
			}
			*e.dst = d
		}
	}
	str(EnvTLSCertFile, &c.TLSCertFile)
	str(EnvTLSKeyFile, &c.TLSKeyFile)
	str(EnvFaultKey, &c.FaultKey)
	switch v := getenv(EnvH2C); v {
	case "":
	case "on":
		c.H2C = true
	case "off":
		c.H2C = false
	default:
		return fmt.Errorf("%s=%q: want on or off", EnvH2C, v)
	}
	if v := getenv(EnvMaxHeaderBytes); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: want a number of bytes", EnvMaxHeaderBytes, v)
		}
		c.MaxHeaderBytes = n
	}
	switch v := getenv(EnvAdmission); v {
	case "":
	case "on":
		c.Admission.Disabled = false
	case "off":
		c.Admission.Disabled = true
	default:
		return fmt.Errorf("%s=%q: want on or off", EnvAdmission, v)
	}
	if v := getenv(EnvDependencies); v != "" {
		var deps map[string]client.Config
		dec := json.NewDecoder(strings.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&deps); err != nil {
			return fmt.Errorf("%s: %w", EnvDependencies, err)
		}
		c.Client = c.Client.WithDependencies(deps)
	}
	return nil
}

// RegisterFlags adds flags that override c's fields when fs is parsed.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Name, "name", c.Name, "service name (env "+EnvName+")")
	fs.StringVar(&c.ID, "instance", c.ID, "instance ID (env "+EnvID+"; default name-random)")
	fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address (env "+EnvAddr+" or "+EnvPort+")")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", c.AdvertiseAddr, "address peers call (env "+EnvAdvertiseAddr+")")
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "gossip bind address (env "+EnvGossipAddr+")")
	fs.StringVar(&c.GossipAdvertiseAddr, "gossip-advertise-addr", c.GossipAdvertiseAddr, "gossip address other members reach, port 0 for the bound one (env "+EnvGossipAdvertiseAddr+"; default "+EnvPodIP+":0 if set, else the bound address)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "listen address of the admin endpoints: health, readiness, metrics, pprof (env "+EnvAdminAddr+"; default 127.0.0.1:0)")
	fs.Func("seeds", "comma-separated gossip addresses of running members (env "+EnvSeeds+")", func(v string) error {
		c.Seeds = splitList(v)
		return nil
	})
	fs.StringVar(&c.GossipProfile, "gossip-profile", c.GossipProfile, "gossip timings: local, lan or wan (env "+EnvGossipProfile+")")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "bound on graceful shutdown (env "+EnvDrainTimeout+")")
	fs.DurationVar(&c.PrepareTimeout, "prepare-timeout", c.PrepareTimeout, "bound on the preparation before serving (env "+EnvPrepareTimeout+"; default 30s)")
	fs.DurationVar(&c.DependencyWait, "dependency-wait", c.DependencyWait, "bound on waiting for called services to appear in discovery before reporting ready (env "+EnvDependencyWait+"; default 20s)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM certificate: serve HTTPS and HTTP/2 (env "+EnvTLSCertFile+"; with -tls-key-file)")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM private key of -tls-cert-file (env "+EnvTLSKeyFile+")")
	fs.BoolVar(&c.H2C, "h2c", c.H2C, "also serve HTTP/2 without TLS (env "+EnvH2C+"=on)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "bound on reading a request's headers (env "+EnvReadHeaderTimeout+"; default 5s)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "bound on a request's header size (env "+EnvMaxHeaderBytes+"; default 1 MiB)")
}

// withDefaults fills unset fields.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.GossipAddr == "" {
		c.GossipAddr = "127.0.0.1:0"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = "127.0.0.1:0"
	}
	if c.GossipProfile == "" {
		c.GossipProfile = "lan"
		if host, _, err := net.SplitHostPort(c.GossipAddr); err == nil {
			if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
				c.GossipProfile = "local"
			}
		}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = defaultDrainTimeout
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if c.DependencyWait == 0 {
		c.DependencyWait = defaultDependencyWait
	}
	if c.PrepareTimeout == 0 {
		c.PrepareTimeout = defaultPrepareTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if c.ID == "" {
		c.ID = c.Name + "-" + randomHex(4)
	}
	if c.Logger == nil {
		c.Logger = defaultLogger()
	}
	c.Logger = slog.New(telemetry.NewLogHandler(c.Logger.Handler()))
	return c
}

// Validate reports every problem with c (after defaults), each naming the
// field and the value. It reads the TLS certificate and key, if set, to
// check that they are a pair.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("name is required (set Config.Name, %s or -name)", EnvName))
	} else if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: use lowercase letters, digits and '-', starting with a letter (it is a host name in URLs)", c.Name))
	}
	for field, addr := range map[string]string{"addr": c.Addr, "gossip_addr": c.GossipAddr, "admin_addr": c.AdminAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port (%v)", field, addr, err))
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertise_addr %q: want host:port (%v)", c.AdvertiseAddr, err))
		}
	}
	if c.GossipAdvertiseAddr != "" {
		if host, _, err := net.SplitHostPort(c.GossipAdvertiseAddr); err != nil || net.ParseIP(host) == nil {
			errs = append(errs, fmt.Errorf("gossip_advertise_addr %q: want ip:port, port 0 for the bound one", c.GossipAdvertiseAddr))
		}
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout %v must not be negative", c.DrainTimeout))
	}
	for _, name := range c.Calls {
		if !validName(name) {
			errs = append(errs, fmt.Errorf("calls: %q is not a service name (lowercase letters, digits and '-', starting with a letter)", name))
		}
	}
	if c.DependencyWait < 0 {
		errs = append(errs, fmt.Errorf("dependency_wait %v must not be negative", c.DependencyWait))
	}
	if c.PrepareTimeout < 0 {
		errs = append(errs, fmt.Errorf("prepare_timeout %v must not be negative", c.PrepareTimeout))
	}
	if c.ReadHeaderTimeout < 0 {
		errs = append(errs, fmt.Errorf("read_header_timeout %v must not be negative", c.ReadHeaderTimeout))
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("max_header_bytes %d must not be negative", c.MaxHeaderBytes))
	}
	if _, err := c.keyPair(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Identity.validate(c.TLSCertFile != ""); err != nil {
		errs = append(errs, err)
	}
	if _, err := chaos.NewVerifier(c.FaultKey, c.Name); err != nil {
		errs = append(errs, fmt.Errorf("fault_key: %w", err))
	}
	if err := c.Admission.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("admission: %w", err))
	}
	return errors.Join(errs...)
}

// keyPair loads the TLS certificate and key, if configured; nil if not.
// Errors name the setting and the file.
func (c Config) keyPair() (*tls.Certificate, error) {
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
		return nil, nil
	case c.TLSKeyFile == "":
		return nil, fmt.Errorf("tls_cert_file %q is set without tls_key_file: set both or neither", c.TLSCertFile)
	case c.TLSCertFile == "":
		return nil, fmt.Errorf("tls_key_file %q is set without tls_cert_file: set both or neither", c.TLSKeyFile)
	}
	certPEM, err := os.ReadFile(c.TLSCertFile)
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file %q: %w", c.TLSCertFile, err)
	}
	keyPEM, err := os.ReadFile(c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls_key_file %q: %w", c.TLSKeyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls_cert_file %q and tls_key_file %q are not a certificate and its key: %w", c.TLSCertFile, c.TLSKeyFile, err)
	}
	return &cert, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
