package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
)

// Checks of the gateway: section. What needs the gateway itself (reading
// key files, the SDK's admin paths) the gateway checks, and reports with
// Gateway.Errorf.

// maxRouteAttempts is the client's cap on attempts per call.
const maxRouteAttempts = 8

// jwtAlgorithms are the JWT signing algorithms the gateway verifies.
var jwtAlgorithms = []string{"HS256", "RS256", "ES256"}

// Validate reports every setting that cannot work, and every pair of
// routes that would take the same requests, each an *Error placed where
// the file set it (when g was read from one). It reads no files.
func (g *Gateway) Validate() error {
	c := &checker{src: g.src}
	c.gateway("gateway", g)
	return Join(c.errs...)
}

// Validate reports every setting that cannot work. Key files are not read
// here: the gateway reads them when it loads the configuration.
func (a Auth) Validate() error {
	c := &checker{}
	c.auth("auth", &a)
	return Join(c.errs...)
}

// Validate reports every setting that cannot work. Key files are not
// read here.
func (j JWT) Validate() error {
	c := &checker{}
	c.jwt("jwt", &j)
	return Join(c.errs...)
}

// Validate reports a limit that cannot work. The zero RateLimit is valid
// and means no limit.
func (rl RateLimit) Validate() error {
	c := &checker{}
	c.rateLimit("rate_limit", &rl)
	return Join(c.errs...)
}

// Validate reports a policy browsers would reject or that cannot be what
// was meant. The zero CORS is valid.
func (cs CORS) Validate() error {
	c := &checker{}
	c.cors("cors", &cs)
	return Join(c.errs...)
}

// Validate reports a mode other than the four (or empty), so that a typo
// in a config file does not leave a route open.
func (m AuthMode) Validate() error {
	switch m {
	case "", AuthNone, AuthJWT, AuthAPIKey, AuthAny:
		return nil
	}
	return fmt.Errorf("auth mode %q: want none, jwt, api_key or any", string(m))
}

func (c *checker) gateway(gp string, g *Gateway) {
	if g.Timeout < 0 {
		c.errorf(gp+".timeout", "%v must not be negative", g.Timeout)
	}
	if g.MaxBody < 0 {
		c.errorf(gp+".max_body", "%d must not be negative", g.MaxBody)
	}
	c.auth(gp+".auth", &g.Auth)
	for i, s := range g.TrustedProxies {
		if _, err := proxyPrefix(s); err != nil {
			c.errorf(item(gp+".trusted_proxies", i), "%v", err)
		}
	}
	rp := gp + ".routes"
	for i := range g.Routes {
		c.route(item(rp, i), &g.Routes[i], &g.Auth)
	}
	c.conflicts(rp, g.Routes)
}

// route checks one route; auth is what the gateway's auth: configures.
func (c *checker) route(p string, r *Route, auth *Auth) {
	switch {
	case r.Path == "":
		c.errorf(p, "path is required, e.g. path: /v1/titles/")
	case !strings.HasPrefix(r.Path, "/"):
		c.errorf(p+".path", "%q must start with /", r.Path)
	case strings.ContainsAny(r.Path, "?# \t\r\n%"):
		c.errorf(p+".path", "%q must be a plain path prefix (no query, fragment, spaces or escapes)", r.Path)
	case r.Prefix() != strings.TrimSuffix(r.Path, "/") && r.Path != "/":
		c.errorf(p+".path", "%q is not clean (doubled slashes or . and .. segments); write %s", r.Path, r.Prefix()+"/")
	}
	if r.Host != "" && (strings.ContainsAny(r.Host, "/ \t\r\n@?#") || strings.HasPrefix(r.Host, ":")) {
		c.errorf(p+".host", "%q must be a host name (optionally with :port), e.g. host: api.example.com", r.Host)
	}
	for i, m := range r.Methods {
		if !isToken(m) {
			c.errorf(item(p+".methods", i), "%q is not an HTTP method, e.g. methods: [GET, HEAD]", m)
		}
	}
	switch {
	case r.Service == "":
		c.errorf(p, "service is required: the service the requests go to, e.g. service: catalog")
	case !ValidServiceName(r.Service):
		c.errorf(p+".service", "%q is not a service name (a lowercase DNS label, e.g. catalog)", r.Service)
	case Reserved(r.Service):
		c.errorf(p+".service", "%q belongs to shoal itself and is never routed", r.Service)
	}
	if r.Strip && r.Rewrite != "" {
		c.errorf(p, "strip and rewrite both change the prefix; keep one")
	}
	if r.Rewrite != "" && (!strings.HasPrefix(r.Rewrite, "/") || strings.ContainsAny(r.Rewrite, "?# \t\r\n%")) {
		c.errorf(p+".rewrite", "%q must be a plain path starting with /, e.g. rewrite: /titles/", r.Rewrite)
	}
	if r.Timeout < 0 {
		c.errorf(p+".timeout", "%v must not be negative", r.Timeout)
	}
	if r.PerTryTimeout < 0 {
		c.errorf(p+".per_try_timeout", "%v must not be negative", r.PerTryTimeout)
	}
	if r.MaxAttempts < 0 || r.MaxAttempts > maxRouteAttempts {
		c.errorf(p+".max_attempts", "%d is out of range [1, %d]", r.MaxAttempts, maxRouteAttempts)
	}
	if r.MaxBody < 0 {
		c.errorf(p+".max_body", "%d must not be negative", r.MaxBody)
	}
	switch r.Auth {
	case "", AuthNone:
	case AuthJWT:
		if auth.JWT == nil {
			c.errorf(p+".auth", "jwt needs gateway.auth.jwt configured (the keys tokens are checked with)")
		}
	case AuthAPIKey:
		if len(auth.APIKeys) == 0 {
			c.errorf(p+".auth", "api_key needs keys under gateway.auth.api_keys")
		}
	case AuthAny:
		if auth.JWT == nil && len(auth.APIKeys) == 0 {
			c.errorf(p+".auth", "any needs gateway.auth.jwt or gateway.auth.api_keys configured")
		}
	default:
		c.errorf(p+".auth", "%q: use none, jwt, api_key or any", string(r.Auth))
	}
	if r.RateLimit != nil {
		c.rateLimit(p+".rate_limit", r.RateLimit)
	}
	if r.CORS != nil {
		c.cors(p+".cors", r.CORS)
	}
}

// conflicts reports routes that take the same requests: same path prefix
// (trailing slash aside), same host, overlapping methods.
func (c *checker) conflicts(rp string, routes []Route) {
	for j := range routes {
		b := &routes[j]
		for i := range j {
			a := &routes[i]
			if a.Prefix() != b.Prefix() || !strings.EqualFold(a.Host, b.Host) {
				continue
			}
			m, ok := overlap(a.Methods, b.Methods)
			if !ok {
				continue
			}
			other := item("routes", i)
			if at, ok := c.src.placed(item(rp, i)); ok {
				other = fmt.Sprintf("the route on line %d", at.line)
			}
			c.errorf(item(rp, j), "route %s conflicts with %s (same path, host and %s); give them different methods or hosts, or remove one", b.Path, other, m)
			break
		}
	}
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

func (c *checker) auth(p string, a *Auth) {
	if a.JWT != nil {
		c.jwt(p+".jwt", a.JWT)
	}
	names := make(map[string]bool, len(a.APIKeys))
	hashes := make(map[string]string, len(a.APIKeys))
	for i, k := range a.APIKeys {
		kp := item(p+".api_keys", i)
		switch {
		case k.Name == "" || len(k.Name) > 64 || strings.ContainsFunc(k.Name, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
		}):
			c.errorf(kp+".name", "%q: want 1-64 letters, digits, '.', '_' or '-'", k.Name)
		case names[k.Name]:
			c.errorf(kp+".name", "duplicate name %q", k.Name)
		}
		names[k.Name] = true
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
			c.errorf(kp+".sha256", "must be 64 hex digits (printf %%s \"$KEY\" | sha256sum), the key's hash, never the key")
			continue
		}
		h := strings.ToLower(k.SHA256)
		if other, dup := hashes[h]; dup {
			c.errorf(kp+".sha256", "same key as %q", other)
		}
		hashes[h] = k.Name
	}
}

func (c *checker) jwt(p string, j *JWT) {
	if len(j.Algorithms) == 0 {
		c.errorf(p, "algorithms is required (HS256, RS256 or ES256)")
	}
	for i, alg := range j.Algorithms {
		switch {
		case slices.Contains(jwtAlgorithms, alg):
		case strings.EqualFold(alg, "none"):
			c.errorf(item(p+".algorithms", i), `"none" would accept unsigned tokens`)
		default:
			c.errorf(item(p+".algorithms", i), "%q: want HS256, RS256 or ES256", alg)
		}
	}
	switch {
	case j.KeyFile == "" && j.JWKSFile == "":
		c.errorf(p, "one of key_file or jwks_file is required")
	case j.KeyFile != "" && j.JWKSFile != "":
		c.errorf(p, "key_file and jwks_file are exclusive: set one")
	case j.KeyFile != "" && slices.ContainsFunc(j.Algorithms, func(a string) bool { return a != j.Algorithms[0] }):
		c.errorf(p+".algorithms", "%v: a key_file holds one key, for one algorithm (use jwks_file for several)", j.Algorithms)
	}
	if j.Audience == "" {
		c.errorf(p, "audience is required: without it a token issued for any other service would be accepted")
	}
	if j.Leeway < 0 {
		c.errorf(p+".leeway", "%v must not be negative", j.Leeway)
	}
}

func (c *checker) rateLimit(p string, rl *RateLimit) {
	if *rl == (RateLimit{}) {
		return
	}
	if !(rl.Rate > 0) || math.IsInf(rl.Rate, 0) {
		c.errorf(p+".rate", "%v must be a positive number of requests per second", rl.Rate)
	}
	if rl.Burst < 0 {
		c.errorf(p+".burst", "%d must not be negative", rl.Burst)
	}
	if rl.Per != "" && rl.Per != PerClient && rl.Per != PerRoute {
		c.errorf(p+".per", "%q: want client or route", rl.Per)
	}
}

func (c *checker) cors(p string, cs *CORS) {
	if len(cs.AllowOrigins) == 0 {
		if len(cs.AllowMethods) > 0 || len(cs.AllowHeaders) > 0 || len(cs.ExposeHeaders) > 0 || cs.AllowCredentials || cs.MaxAge != 0 {
			c.errorf(p, "allow_origins is required: without it no origin is allowed")
		}
		return
	}
	for i, o := range cs.AllowOrigins {
		op := item(p+".allow_origins", i)
		if o == "*" {
			if cs.AllowCredentials {
				c.errorf(op, `"*" with allow_credentials: browsers reject that; list the origins`)
			}
			continue
		}
		if err := validOrigin(o); err != nil {
			c.errorf(op, "%q: %v", o, err)
		}
	}
	for i, m := range cs.AllowMethods {
		if !isToken(m) {
			c.errorf(item(p+".allow_methods", i), "%q is not a method", m)
		}
	}
	for i, h := range cs.AllowHeaders {
		if h != "*" && !isToken(h) {
			c.errorf(item(p+".allow_headers", i), "%q is not a header name", h)
		}
	}
	for i, h := range cs.ExposeHeaders {
		if h != "*" && !isToken(h) {
			c.errorf(item(p+".expose_headers", i), "%q is not a header name", h)
		}
	}
	if cs.MaxAge < 0 {
		c.errorf(p+".max_age", "%v must not be negative", cs.MaxAge)
	}
}

// validOrigin reports whether o is an origin as browsers serialise it.
func validOrigin(o string) error {
	if o == "null" {
		// Sandboxed iframes and file: pages all send "null": allowing it
		// allows anyone.
		return errors.New(`"null" would allow any sandboxed page`)
	}
	u, err := url.Parse(o)
	if err != nil {
		return errors.New("want scheme://host[:port]")
	}
	switch {
	case u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return errors.New("want scheme://host[:port]")
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
		return errors.New("an origin has no path (not even a trailing /), query or user")
	case strings.ContainsFunc(u.Host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r))
	}):
		// Notably "*": origins match exactly, there are no patterns.
		return errors.New("the host has characters origins never have (patterns such as *.example.com are not supported)")
	}
	return nil
}
