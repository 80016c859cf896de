package gateway

import (
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/manifest"
)

// DefaultMaxBody is the request body limit when neither the route nor the
// configuration sets one.
const DefaultMaxBody = 10 << 20

// The gateway's configuration is the gateway: section of a manifest:
// package manifest owns its schema, decoding and checks (Config.Validate),
// and these names let code that configures a gateway read as such. What
// needs the gateway itself (key files, the services' admin paths) Check
// and SetConfig check on top.
type (
	// Config is the gateway's configuration. The zero value routes
	// /<service>/<path> only, as New does.
	Config = manifest.Gateway
	// Route sends the requests under a path prefix to a service.
	Route = manifest.Route
	// AuthConfig holds the credentials routes may require.
	AuthConfig = manifest.Auth
	// JWTConfig says which JSON Web Tokens the gateway accepts.
	JWTConfig = manifest.JWT
	// APIKey is one accepted API key, by its SHA-256.
	APIKey = manifest.APIKey
	// AuthMode is what a route requires of its callers.
	AuthMode = manifest.AuthMode
	// RateLimit is a route's token bucket.
	RateLimit = manifest.RateLimit
	// CORS is a route's cross-origin policy.
	CORS = manifest.CORS
	// Size is a number of bytes (10MB in YAML).
	Size = manifest.Size
)

// The auth modes. The empty AuthMode means AuthNone.
const (
	AuthNone   = manifest.AuthNone
	AuthJWT    = manifest.AuthJWT
	AuthAPIKey = manifest.AuthAPIKey
	AuthAny    = manifest.AuthAny
)

// target is the path prefix r's requests arrive at in the service.
func target(r *Route) string {
	switch {
	case r.Rewrite != "":
		return r.Rewrite
	case r.Strip:
		return "/"
	}
	return r.Path
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
