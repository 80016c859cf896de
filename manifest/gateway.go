package manifest

import (
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Gateway is the gateway: section of a manifest, the front door's
// configuration; shoal gateway --config reads it (and reloads it when the
// file changes). The zero value routes /<service>/<path> only.
type Gateway struct {
	// DefaultRoutes keeps /<service>/<path> routing for requests no route
	// matches; nil means true. Set it to false to expose only Routes.
	DefaultRoutes *bool `yaml:"default_routes" example:"false"`
	// Timeout bounds a proxied request, failover included, unless its
	// route sets one; zero means the gateway's default.
	Timeout time.Duration `yaml:"timeout" example:"5s"`
	// MaxBody limits request bodies (413 beyond it) unless the route sets
	// a limit; zero means the gateway's default (10 MB).
	MaxBody Size `yaml:"max_body" example:"10MB"`
	// AccessLog writes one JSON line per request.
	AccessLog bool `yaml:"access_log" example:"true"`
	// Auth holds the credentials routes may require.
	Auth Auth `yaml:"auth" example:"{api_keys: [{name: ops, sha256: <hex>}]}"`
	// Routes, matched by longest path prefix, then host, then method.
	Routes []Route `yaml:"routes" example:"[{path: /v1/titles/, service: catalog}]"`
	// TrustedProxies are the proxies in front of the gateway (load
	// balancers, CDNs) whose X-Forwarded-For it believes, as IP addresses
	// or CIDR prefixes. For a request from one of them, the client is the
	// nearest address in X-Forwarded-For that is not itself a trusted
	// proxy; per-client rate limits, the access log and the services'
	// X-Forwarded-For use it. Empty: the client is the connection's peer,
	// whatever the request says.
	TrustedProxies []string `yaml:"trusted_proxies" example:"[10.0.0.0/8, 192.0.2.7]"`

	// src places the settings in the file they were read from; nil when
	// built in code.
	src *source
}

// ProxyPrefixes returns TrustedProxies as prefixes (an address is a
// prefix of its full length), or the first entry that is neither an IP
// address nor a CIDR prefix.
func (g *Gateway) ProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range g.TrustedProxies {
		p, err := proxyPrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// proxyPrefix parses a TrustedProxies entry. IPv4 addresses written as
// IPv6 (::ffff:10.0.0.1) are unmapped, as the gateway reads peers.
func proxyPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be matched", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR prefix (e.g. 10.0.0.0/8)", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set past its prefix length; write %s", s, p.Masked())
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// DevCredentials returns the key paths under gateway: of the credentials
// marked dev ("auth.jwt", "auth.api_keys[1]"), for Errorf; nil when there
// are none.
func (g *Gateway) DevCredentials() []string {
	var out []string
	if g.Auth.JWT != nil && g.Auth.JWT.Dev {
		out = append(out, "auth.jwt")
	}
	for i, k := range g.Auth.APIKeys {
		if k.Dev {
			out = append(out, item("auth.api_keys", i))
		}
	}
	return out
}

// DefaultRouting reports whether /<service>/<path> routing is on.
func (g *Gateway) DefaultRouting() bool { return g.DefaultRoutes == nil || *g.DefaultRoutes }

// Errorf returns a problem with the setting at p, a key path under
// gateway: (e.g. "auth.jwt" or "routes[2]"), placed where the file set it
// when g was read from one. The gateway reports what it checks beyond
// Validate (key files, admin paths) with it.
func (g *Gateway) Errorf(p, format string, args ...any) *Error {
	return g.src.errorf("gateway."+p, format, args...)
}

// Route sends the requests under a path prefix to a service.
type Route struct {
	// Path is the prefix the request path must start with, segment-wise:
	// /v1/titles/ and /v1/titles both match /v1/titles and /v1/titles/7,
	// never /v1/titlesx. Required; the longest matching prefix wins.
	Path string `yaml:"path" example:"/v1/titles/"`
	// Host, if set, must equal the request's Host (port ignored, case
	// too). A route with a host beats one without for the same path.
	Host string `yaml:"host" example:"api.example.com"`
	// Methods the route takes; empty means all. A path that matches with
	// no route taking the method gets 405 with an Allow header.
	Methods []string `yaml:"methods" example:"[GET, HEAD]"`
	// Service the requests go to. Required.
	Service string `yaml:"service" example:"catalog"`
	// Strip removes the matched prefix: /v1/titles/7 becomes /7.
	Strip bool `yaml:"strip" example:"true"`
	// Rewrite replaces the matched prefix: with rewrite: /titles/,
	// /v1/titles/7 becomes /titles/7. At most one of Strip and Rewrite.
	Rewrite string `yaml:"rewrite" example:"/titles/"`
	// Timeout of the route's requests; zero means Gateway.Timeout. A
	// request may use all of it on one instance: a slow answer is not a
	// failure.
	Timeout time.Duration `yaml:"timeout" example:"2s"`
	// PerTryTimeout, if set, bounds each attempt's wait for response
	// headers; the attempt is then abandoned and, for idempotent requests,
	// tried on another instance. Zero (the default) means none.
	PerTryTimeout time.Duration `yaml:"per_try_timeout" example:"500ms"`
	// MaxAttempts caps the client's attempts per request (1 to 8); zero
	// keeps the client's policy for the service.
	MaxAttempts int `yaml:"max_attempts" example:"2"`
	// Hedge: false turns hedging off for the route; nil keeps the
	// client's policy (hedging idempotent requests).
	Hedge *bool `yaml:"hedge" example:"false"`
	// MaxBody limits the route's request bodies; zero means Gateway.MaxBody.
	MaxBody Size `yaml:"max_body" example:"1MB"`
	// Auth is the credential the route requires: none (the default), jwt,
	// api_key, or any (either).
	Auth AuthMode `yaml:"auth" example:"jwt"`
	// RateLimit, if set, is a token bucket for the route, shared or per client.
	RateLimit *RateLimit `yaml:"rate_limit" example:"{rate: 100, burst: 200, per: client}"`
	// CORS, if set, is the route's cross-origin policy.
	CORS *CORS `yaml:"cors" example:"{allow_origins: ['https://flix.example'], max_age: 10m}"`
}

// Prefix is the route's path as matched: cleaned, without a trailing
// slash; "" for the root.
func (r *Route) Prefix() string {
	if r.Path == "" {
		return ""
	}
	c := path.Clean(r.Path)
	if c == "/" {
		return ""
	}
	return c
}

// Auth holds the credentials the gateway accepts; each route says which
// kind it requires (AuthMode). The zero value accepts none, which suits
// gateways whose routes are all public.
type Auth struct {
	// JWT verifies bearer tokens (Authorization: Bearer <jwt>). Nil: no route
	// may require a JWT.
	JWT *JWT `yaml:"jwt" example:"{algorithms: [ES256], key_file: keys/jwt.pub, audience: flix}"`
	// APIKeys are the accepted API keys (Authorization: ApiKey <key>, or the
	// X-API-Key header), by the SHA-256 of the key.
	APIKeys []APIKey `yaml:"api_keys" example:"[{name: ops, sha256: <hex>}]"`
}

// JWT says which JSON Web Tokens the gateway accepts. Tokens must carry
// exp, aud (containing Audience) and sub; nbf and iat are honoured when
// present; iss must equal Issuer when Issuer is set.
type JWT struct {
	// Algorithms are the accepted signing algorithms, a subset of HS256,
	// RS256 and ES256. Required, so that a token cannot pick its own
	// algorithm; "none" is never accepted.
	Algorithms []string `yaml:"algorithms" example:"[ES256]"`
	// KeyFile holds the one verification key: for HS256 the shared secret
	// (the file's content, surrounding white space trimmed, at least 32
	// bytes); for RS256 or ES256 a PEM public key (or certificate). With a
	// KeyFile, Algorithms has a single entry, the key's. Relative paths are
	// relative to the manifest's folder.
	KeyFile string `yaml:"key_file" example:"keys/jwt.pub"`
	// JWKSFile is the alternative to KeyFile: a JSON Web Key Set (RFC 7517)
	// of RSA, EC P-256 and oct keys; a token's kid header picks the key.
	JWKSFile string `yaml:"jwks_file" example:"keys/jwks.json"`
	// Issuer, when set, must equal the token's iss claim.
	Issuer string `yaml:"issuer" example:"flix-profiles"`
	// Audience must be one of the token's aud claim: required, so that a
	// token issued for another service sharing the issuer is not accepted
	// here.
	Audience string `yaml:"audience" example:"flix"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means the
	// gateway's default (30s).
	Leeway time.Duration `yaml:"leeway" example:"30s"`
	// Dev marks the key as a development key, published with the code
	// (anyone can sign tokens with its private half): the gateway refuses
	// it unless SHOAL_DEV=1 is set in its environment, and warns whenever
	// it loads it.
	Dev bool `yaml:"dev" example:"true"`
}

// APIKey is one accepted API key. The key itself never appears in the
// configuration, only its hex SHA-256, which operators compute with
//
//	printf %s "$KEY" | sha256sum
//
// so that a leaked config file leaks no key. Keys must be high-entropy
// random strings (e.g. 32 random bytes, base64): a hash of a guessable key
// can be reversed by guessing.
type APIKey struct {
	// Name identifies the key's holder: it becomes the request's subject and
	// its rate-limit key, and appears in access logs. Letters, digits and
	// . _ - only, at most 64.
	Name string `yaml:"name" example:"ops"`
	// SHA256 is the hex SHA-256 of the key (64 hex digits).
	SHA256 string `yaml:"sha256" example:"2c0798bbed78e283bb7ba707831a2e7160753cd511f3bc9f96b0568da6430779"`
	// Dev marks a development key, published with the code: the gateway
	// refuses it unless SHOAL_DEV=1 is set in its environment, and warns
	// whenever it loads it.
	Dev bool `yaml:"dev" example:"true"`
}

// AuthMode is what a route requires of its callers.
type AuthMode string

// The auth modes. The empty AuthMode means AuthNone.
const (
	// AuthNone accepts every request and ignores its credentials.
	AuthNone AuthMode = "none"
	// AuthJWT requires a valid bearer token.
	AuthJWT AuthMode = "jwt"
	// AuthAPIKey requires a known API key.
	AuthAPIKey AuthMode = "api_key"
	// AuthAny requires either.
	AuthAny AuthMode = "any"
)

// RateLimit is a route's token bucket: Rate requests per second on
// average, bursts of up to Burst. The zero value means no limit.
type RateLimit struct {
	// Rate is the sustained rate, in requests per second (fractions allowed:
	// 0.5 is one request every two seconds).
	Rate float64 `yaml:"rate" example:"100"`
	// Burst is how many requests may come at once after a quiet spell. Zero
	// means Rate rounded up, at least 1.
	Burst int `yaml:"burst" example:"200"`
	// Per says who shares a bucket: "client" (the default) gives each
	// authenticated subject, or each client address when anonymous, its own
	// bucket, so that one client cannot starve the others; "route" puts all
	// callers in one bucket, to protect the service behind the route.
	Per string `yaml:"per" example:"client"`
}

// The values of RateLimit.Per.
const (
	PerClient = "client"
	PerRoute  = "route"
)

// CORS is a route's cross-origin policy: which web pages, served from other
// origins, may call the route from a browser. The gateway answers
// preflights itself, so services never see them. The zero value allows no
// cross-origin requests.
type CORS struct {
	// AllowOrigins are the allowed origins, exactly as browsers send them
	// (scheme://host[:port], no path), or "*" for any. "*" cannot be
	// combined with AllowCredentials: browsers reject that.
	AllowOrigins []string `yaml:"allow_origins" example:"['https://flix.example']"`
	// AllowMethods are the methods a preflight may ask for. Empty means the
	// methods browsers send without one: GET, HEAD and POST.
	AllowMethods []string `yaml:"allow_methods" example:"[GET, POST, DELETE]"`
	// AllowHeaders are the request headers pages may send beyond the
	// CORS-safelisted ones (e.g. Authorization, Content-Type: application/json).
	AllowHeaders []string `yaml:"allow_headers" example:"[Authorization, Content-Type]"`
	// ExposeHeaders are the response headers pages may read beyond the
	// safelisted ones (e.g. RateLimit-Remaining).
	ExposeHeaders []string `yaml:"expose_headers" example:"[RateLimit-Remaining]"`
	// AllowCredentials lets pages send cookies and HTTP auth, and read the
	// answers to such requests.
	AllowCredentials bool `yaml:"allow_credentials" example:"true"`
	// MaxAge is how long browsers may cache a preflight's answer (whole
	// seconds; browsers cap it, Chrome at 2h). Zero: the browser's default
	// (5s).
	MaxAge time.Duration `yaml:"max_age" example:"10m"`
}

// isToken reports whether s is an RFC 9110 token, as method and header
// names are.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
