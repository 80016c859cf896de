// Package bearer reads a bearer token (RFC 6750) from a request's
// Authorization header: one header, the scheme matched without regard to
// case, the token trimmed.
package bearer

import (
	"net/http"
	"strings"
)

// Token returns r's bearer token, or "" when r has none: no Authorization
// header, more than one, another scheme, or an empty token.
func Token(r *http.Request) string {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return ""
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vs[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
