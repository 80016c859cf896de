package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS is a route's cross-origin policy: which web pages, served from other
// origins, may call the route from a browser. The gateway answers
// preflights itself, so services never see them. The zero value allows no
// cross-origin requests.
//
// A preflight from an origin that is not allowed, or for a method that is
// not, gets 204 without CORS headers: the browser then blocks the request,
// and the answer tells the page nothing about the policy (a 403 would be
// just as blocked, but would look like an error in the service's metrics).
type CORS struct {
	// AllowOrigins are the allowed origins, exactly as browsers send them
	// (scheme://host[:port], no path), or "*" for any. "*" cannot be
	// combined with AllowCredentials: browsers reject that.
	AllowOrigins []string `yaml:"allow_origins"`
	// AllowMethods are the methods a preflight may ask for. Empty means the
	// methods browsers send without one: GET, HEAD and POST.
	AllowMethods []string `yaml:"allow_methods"`
	// AllowHeaders are the request headers pages may send beyond the
	// CORS-safelisted ones (e.g. Authorization, Content-Type: application/json).
	AllowHeaders []string `yaml:"allow_headers"`
	// ExposeHeaders are the response headers pages may read beyond the
	// safelisted ones (e.g. RateLimit-Remaining).
	ExposeHeaders []string `yaml:"expose_headers"`
	// AllowCredentials lets pages send cookies and HTTP auth, and read the
	// answers to such requests.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long browsers may cache a preflight's answer (whole
	// seconds; browsers cap it, Chrome at 2h). Zero: the browser's default
	// (5s).
	MaxAge time.Duration `yaml:"max_age"`
}

// defaultCORSMethods are the methods allowed when AllowMethods is empty:
// those browsers send without a preflight anyway.
var defaultCORSMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost}

// Validate reports a policy browsers would reject or that cannot be what
// was meant. The zero CORS is valid.
func (c CORS) Validate() error {
	if len(c.AllowOrigins) == 0 {
		if len(c.AllowMethods) > 0 || len(c.AllowHeaders) > 0 || len(c.ExposeHeaders) > 0 || c.AllowCredentials || c.MaxAge != 0 {
			return errors.New("allow_origins is required: without it no origin is allowed")
		}
		return nil
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return errors.New(`allow_origins "*" with allow_credentials: browsers reject that; list the origins`)
			}
			continue
		}
		if err := validOrigin(o); err != nil {
			return fmt.Errorf("allow_origins: %q: %w", o, err)
		}
	}
	for _, m := range c.AllowMethods {
		if !isToken(m) {
			return fmt.Errorf("allow_methods: %q is not a method", m)
		}
	}
	for _, h := range c.AllowHeaders {
		if h != "*" && !isToken(h) {
			return fmt.Errorf("allow_headers: %q is not a header name", h)
		}
	}
	for _, h := range c.ExposeHeaders {
		if h != "*" && !isToken(h) {
			return fmt.Errorf("expose_headers: %q is not a header name", h)
		}
	}
	if c.MaxAge < 0 {
		return fmt.Errorf("max_age %v must not be negative", c.MaxAge)
	}
	return nil
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

// handle applies the policy to r. It always adds Vary: Origin (the answer
// depends on it, so caches must key on it). For an allowed origin it adds
// Access-Control-Allow-Origin and friends to w's headers, and a preflight
// (OPTIONS with Origin and Access-Control-Request-Method) it answers itself with 204,
// allowed or not, reporting done: the caller must then not write to w
// again. c may be nil (no policy: nothing done).
func (c *CORS) handle(w http.ResponseWriter, r *http.Request) (done bool) {
	if c == nil {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	// Browsers send Origin with every preflight; an OPTIONS without one is
	// not a preflight and goes to the service.
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	allowOrigin, ok := c.allowOrigin(origin)
	if !preflight {
		if ok {
			h.Set("Access-Control-Allow-Origin", allowOrigin)
			if len(c.ExposeHeaders) > 0 {
				h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
			}
			if c.AllowCredentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
		}
		return false
	}

	method := r.Header.Get("Access-Control-Request-Method")
	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = defaultCORSMethods
	}
	if ok && slices.Contains(methods, method) {
		h.Set("Access-Control-Allow-Origin", allowOrigin)
		if len(c.AllowMethods) > 0 {
			h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ", "))
		} else {
			h.Set("Access-Control-Allow-Methods", method)
		}
		if len(c.AllowHeaders) > 0 {
			// Listing the configured headers is enough: the browser
			// blocks requests with headers not listed.
			h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ", "))
		}
		if secs := int64(c.MaxAge / time.Second); secs > 0 {
			h.Set("Access-Control-Max-Age", strconv.FormatInt(secs, 10))
		}
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// allowOrigin returns the Access-Control-Allow-Origin value for origin, if
// allowed: "*" for a wildcard policy without credentials, else the origin
// itself. Origins compare case-insensitively (scheme and host are).
func (c *CORS) allowOrigin(origin string) (string, bool) {
	if origin == "" {
		return "", false
	}
	for _, o := range c.AllowOrigins {
		if o == "*" && !c.AllowCredentials { // with credentials Validate rejects "*"; fail closed if skipped
			return "*", true
		}
		if strings.EqualFold(o, origin) {
			return origin, true
		}
	}
	return "", false
}
