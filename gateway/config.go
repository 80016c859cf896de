package gateway

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// DefaultMaxBody is the request body limit when neither the route nor the
// configuration sets one.
const DefaultMaxBody = 10 << 20

// maxRouteAttempts is the client's cap on attempts per call.
const maxRouteAttempts = 8

// Config is the gateway's part of a manifest, the gateway: key of
// shoal.yaml. The zero value routes /<service>/<path> only, as New does.
type Config struct {
	// DefaultRoutes keeps /<service>/<path> routing for requests no route
	// matches; nil means true. Set it to false to expose only Routes.
	DefaultRoutes *bool `yaml:"default_routes"`
	// Timeout bounds a proxied request, failover included, unless its
	// route sets one; zero means Gateway.Timeout, then DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBody limits request bodies (413 beyond it) unless the route sets
	// a limit; zero means DefaultMaxBody.
	MaxBody Size `yaml:"max_body"`
	// AccessLog writes one JSON line per request (see Gateway.AccessLogger).
	AccessLog bool `yaml:"access_log"`
	// Auth holds the credentials routes may require.
	Auth AuthConfig `yaml:"auth"`
	// Routes, matched by longest path prefix, then host, then method.
	Routes []Route `yaml:"routes"`

	keyLines map[string]int // line of each key under gateway:, set by ParseManifest
}

// Route sends the requests under a path prefix to a service.
type Route struct {
	// Path is the prefix the request path must start with, segment-wise:
	// /v1/titles/ and /v1/titles both match /v1/titles and /v1/titles/7,
	// never /v1/titlesx. Required; the longest matching prefix wins.
	Path string `yaml:"path"`
	// Host, if set, must equal the request's Host (port ignored, case
	// too). A route with a host beats one without for the same path.
	Host string `yaml:"host"`
	// Methods the route takes; empty means all. A path that matches with
	// no route taking the method gets 405 with an Allow header.
	Methods []string `yaml:"methods"`
	// Service the requests go to. Required.
	Service string `yaml:"service"`
	// Strip removes the matched prefix: /v1/titles/7 becomes /7.
	Strip bool `yaml:"strip"`
	// Rewrite replaces the matched prefix: with rewrite: /titles/,
	// /v1/titles/7 becomes /titles/7. At most one of Strip and Rewrite.
	Rewrite string `yaml:"rewrite"`
	// Timeout of the route's requests; zero means Config.Timeout. A request
	// may use all of it on one instance: a slow answer is not a failure.
	Timeout time.Duration `yaml:"timeout"`
	// PerTryTimeout, if set, bounds each attempt's wait for response
	// headers; the attempt is then abandoned and, for idempotent requests,
	// tried on another instance. Zero (the default) means none.
	PerTryTimeout time.Duration `yaml:"per_try_timeout"`
	// MaxAttempts caps the client's attempts per request (1 to 8); zero
	// keeps the client's policy for the service.
	MaxAttempts int `yaml:"max_attempts"`
	// Hedge: false turns hedging off for the route; nil keeps the
	// client's policy (hedging idempotent requests).
	Hedge *bool `yaml:"hedge"`
	// MaxBody limits the route's request bodies; zero means Config.MaxBody.
	MaxBody Size `yaml:"max_body"`
	// Auth is the credential the route requires: none (the default), jwt,
	// api_key, or any (either).
	Auth AuthMode `yaml:"auth"`
	// RateLimit, if set, is a token bucket for the route, shared or per client.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// CORS, if set, is the route's cross-origin policy.
	CORS *CORS `yaml:"cors"`

	// Line is where the route starts in the manifest, for messages; 0 if
	// it does not come from a file.
	Line int `yaml:"-"`
}

// defaultRoutes reports whether /<service>/<path> routing is on.
func (c *Config) defaultRoutes() bool { return c.DefaultRoutes == nil || *c.DefaultRoutes }

// ConfigError is one mistake in a gateway configuration. Validate and
// ParseManifest return every mistake they find, joined with errors.Join.
type ConfigError struct {
	File string // the manifest's name; "" when not from a file
	Line int    // 1-based; 0 if unknown
	Msg  string // starts with "gateway: "
}

func (e *ConfigError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Validate reports every setting that cannot work, and every pair of routes
// that would take the same requests. It reads no files (key files are read
// by Gateway.SetConfig).
func (c *Config) Validate() error {
	var errs []error
	add := func(line int, format string, args ...any) {
		errs = append(errs, &ConfigError{Line: line, Msg: "gateway: " + fmt.Sprintf(format, args...)})
	}
	if c.Timeout < 0 {
		add(c.keyLines["timeout"], "timeout %v must not be negative", c.Timeout)
	}
	if c.MaxBody < 0 {
		add(c.keyLines["max_body"], "max_body %d must not be negative", c.MaxBody)
	}
	if err := c.Auth.Validate(); err != nil {
		add(c.keyLines["auth"], "auth: %v", trimPrefix(err))
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		what := fmt.Sprintf("routes[%d]", i)
		if r.Path != "" {
			what += " (" + r.Path + ")"
		}
		for _, msg := range c.routeProblems(r) {
			add(r.Line, "%s: %s", what, msg)
		}
	}
	errs = append(errs, c.conflicts()...)
	return errors.Join(errs...)
}

// trimPrefix drops a leading "gateway: " from a helper's error.
func trimPrefix(err error) string { return strings.TrimPrefix(err.Error(), "gateway: ") }

// routeProblems lists what is wrong with r.
func (c *Config) routeProblems(r *Route) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	switch {
	case r.Path == "":
		bad("path is required, e.g. path: /v1/titles/")
	case !strings.HasPrefix(r.Path, "/"):
		bad("path %q must start with /", r.Path)
	case strings.ContainsAny(r.Path, "?# \t\r\n%"):
		bad("path %q must be a plain path prefix (no query, fragment, spaces or escapes)", r.Path)
	case cleanPrefix(r.Path) != strings.TrimSuffix(r.Path, "/") && r.Path != "/":
		bad("path %q is not clean (doubled slashes or . and .. segments); write %s", r.Path, cleanPrefix(r.Path)+"/")
	}
	if r.Host != "" && (strings.ContainsAny(r.Host, "/ \t\r\n@?#") || strings.HasPrefix(r.Host, ":")) {
		bad("host %q must be a host name (optionally with :port), e.g. host: api.example.com", r.Host)
	}
	for _, m := range r.Methods {
		if !validToken(m) {
			bad("method %q is not an HTTP method, e.g. methods: [GET, HEAD]", m)
		}
	}
	switch {
	case r.Service == "":
		bad("service is required: the service the requests go to, e.g. service: catalog")
	case !validService(r.Service):
		bad("service %q is not a service name (a lowercase DNS label, e.g. catalog)", r.Service)
	case internalService(r.Service):
		bad("service %q belongs to shoal itself and is never routed", r.Service)
	}
	if r.Strip && r.Rewrite != "" {
		bad("strip and rewrite both change the prefix; keep one")
	}
	if r.Rewrite != "" && (!strings.HasPrefix(r.Rewrite, "/") || strings.ContainsAny(r.Rewrite, "?# \t\r\n%")) {
		bad("rewrite %q must be a plain path starting with /, e.g. rewrite: /titles/", r.Rewrite)
	}
	if target := r.target(); target != "" && isAdminPath(target) {
		bad("the requests would go to %s, an admin path of the service, which the gateway never serves", path.Clean(target))
	}
	if r.Timeout < 0 {
		bad("timeout %v must not be negative", r.Timeout)
	}
	if r.PerTryTimeout < 0 {
		bad("per_try_timeout %v must not be negative", r.PerTryTimeout)
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > maxRouteAttempts {
		bad("max_attempts %d out of range [1, %d]", r.MaxAttempts, maxRouteAttempts)
	}
	if r.MaxBody < 0 {
		bad("max_body %d must not be negative", r.MaxBody)
	}
	switch r.Auth {
	case "", AuthNone:
	case AuthJWT:
		if c.Auth.JWT == nil {
			bad("auth: jwt needs gateway: auth: jwt: configured (the keys tokens are checked with)")
		}
	case AuthAPIKey:
		if len(c.Auth.APIKeys) == 0 {
			bad("auth: api_key needs keys under gateway: auth: api_keys:")
		}
	case AuthAny:
		if c.Auth.JWT == nil && len(c.Auth.APIKeys) == 0 {
			bad("auth: any needs gateway: auth: jwt: or api_keys: configured")
		}
	default:
		bad("auth %q: use none, jwt, api_key or any", r.Auth)
	}
	if r.RateLimit != nil {
		if err := r.RateLimit.Validate(); err != nil {
			bad("rate_limit: %s", trimPrefix(err))
		}
	}
	if r.CORS != nil {
		if err := r.CORS.Validate(); err != nil {
			bad("cors: %s", trimPrefix(err))
		}
	}
	return out
}

// target is the path prefix r's requests arrive at in the service.
func (r *Route) target() string {
	switch {
	case r.Rewrite != "":
		return r.Rewrite
	case r.Strip:
		return "/"
	}
	return r.Path
}

// conflicts reports routes that take the same requests: same path prefix
// (trailing slash aside), same host, overlapping methods.
func (c *Config) conflicts() []error {
	var errs []error
	for j := range c.Routes {
		b := &c.Routes[j]
		for i := range j {
			a := &c.Routes[i]
			if cleanPrefix(a.Path) != cleanPrefix(b.Path) || !strings.EqualFold(a.Host, b.Host) {
				continue
			}
			m, ok := overlap(a.Methods, b.Methods)
			if !ok {
				continue
			}
			other := fmt.Sprintf("routes[%d]", i)
			if a.Line > 0 {
				other = fmt.Sprintf("the route on line %d", a.Line)
			}
			errs = append(errs, &ConfigError{Line: b.Line, Msg: fmt.Sprintf(
				"gateway: route %s conflicts with %s (same path, host and %s); give them different methods or hosts, or remove one",
				b.Path, other, m)})
			break
		}
	}
	return errs
}

// overlap reports whether two method lists share a method (empty means
// all), naming one.
func overlap(a, b []string) (string, bool) {
	switch {
	case len(a) == 0 && len(b) == 0:
		return "every method", true
	case len(a) == 0:
		return "method " + strings.ToUpper(b[0]), true
	case len(b) == 0:
		return "method " + strings.ToUpper(a[0]), true
	}
	for _, m := range a {
		if slices.ContainsFunc(b, func(n string) bool { return strings.EqualFold(m, n) }) {
			return "method " + strings.ToUpper(m), true
		}
	}
	return "", false
}

// cleanPrefix normalizes a route path for matching: cleaned, without a
// trailing slash; the root is "".
func cleanPrefix(p string) string {
	if p == "" {
		return ""
	}
	c := path.Clean(p)
	if c == "/" {
		return ""
	}
	return c
}

// validToken reports whether s is an HTTP token (RFC 9110), as methods are.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Size is a number of bytes. In YAML it is a whole number, or a number
// with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of
// 1024), e.g. 512KB, 10MB, 1MiB.
type Size int64

// ParseSize reads a Size as written in YAML.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("size %q: write a number of bytes, optionally with a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 10MB", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	v := math.Round(f * float64(mult))
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(v), nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// UnmarshalYAML reads a Size from a YAML scalar.
func (s *Size) UnmarshalYAML(n ast.Node) error {
	text, ok := scalarText(n)
	if !ok {
		return fmt.Errorf("a size must be a number of bytes or a string such as 10MB")
	}
	v, err := ParseSize(text)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String writes s in the largest binary unit that divides it.
func (s Size) String() string {
	for _, u := range []struct {
		n    Size
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// upperMethods returns ms upper-cased, without repeats.
func upperMethods(ms []string) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		m = strings.ToUpper(m)
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
