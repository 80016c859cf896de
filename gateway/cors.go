package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultCORSMethods are the methods allowed when AllowMethods is empty:
// those browsers send without a preflight anyway.
var defaultCORSMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost}

// applyCORS applies the policy c to r. It always adds Vary: Origin (the answer
// depends on it, so caches must key on it). For an allowed origin it adds
// Access-Control-Allow-Origin and friends to w's headers, and a preflight
// (OPTIONS with Origin and Access-Control-Request-Method) it answers itself with 204,
// allowed or not, reporting done: the caller must then not write to w
// again. c may be nil (no policy: nothing done).
func applyCORS(c *CORS, w http.ResponseWriter, r *http.Request) (done bool) {
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
	allowOrigin, ok := corsOrigin(c, origin)
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

// corsOrigin returns the Access-Control-Allow-Origin value for origin, if
// allowed: "*" for a wildcard policy without credentials, else the origin
// itself. Origins compare case-insensitively (scheme and host are).
func corsOrigin(c *CORS, origin string) (string, bool) {
	if origin == "" {
		return "", false
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if !c.AllowCredentials {
				return "*", true
			}
			// With credentials Validate rejects "*"; fail closed if it was
			// skipped, also for a request whose Origin is "*" itself.
			continue
		}
		if strings.EqualFold(o, origin) {
			return origin, true
		}
	}
	return "", false
}
