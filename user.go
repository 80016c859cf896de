package shoal

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/identity"
)

// RequireUser returns the end user r acts for, as the service's
// identity.Guard verified them from the gateway's user token
// (identity.UserFrom), if the gateway verified them by one of auths: "jwt"
// for a sign-in token, "api_key:NAME" for an API key (User.Auth); no auths
// accepts any. Otherwise it answers 401 unauthenticated and reports false.
//
// Check the method before taking Subject for a user id: an API key's name is
// a Subject too. A Shoal-Subject header is never a user.
func RequireUser(w http.ResponseWriter, r *http.Request, auths ...string) (identity.User, bool) {
	u, ok := identity.UserFrom(r.Context())
	switch {
	case !ok:
		unauthenticated(w, "no signed-in user"+needs(auths)+": call through the gateway with the user's credentials")
		return identity.User{}, false
	case len(auths) > 0 && !slices.Contains(auths, u.Auth):
		unauthenticated(w, fmt.Sprintf("the user was verified by %s%s", u.Auth, needs(auths)))
		return identity.User{}, false
	}
	return u, true
}

// unauthenticated answers 401 with msg. RFC 9110: a 401 names a scheme;
// the user's credentials go to the gateway, which turns them into the user
// token.
func unauthenticated(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
	WriteError(w, http.StatusUnauthorized, "unauthenticated", msg)
}

// RequireSelf is RequireUser for a request about one user's data: id (a
// path wildcard, a field of the body) must be the signed-in user's
// Subject, or it answers 403 forbidden and reports false. With no auths it
// accepts "jwt" only (a sign-in token): an API key's name is a Subject
// too, and must not pass for a user of that name.
func RequireSelf(w http.ResponseWriter, r *http.Request, id string, auths ...string) (identity.User, bool) {
	if len(auths) == 0 {
		auths = []string{"jwt"}
	}
	u, ok := RequireUser(w, r, auths...)
	if ok && u.Subject != id {
		WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("%q is not the signed-in user", id))
		return identity.User{}, false
	}
	return u, ok
}

// needs words the methods a route accepts, for RequireUser's refusals.
func needs(auths []string) string {
	if len(auths) == 0 {
		return ""
	}
	return "; this route needs one verified by " + strings.Join(auths, " or ")
}
