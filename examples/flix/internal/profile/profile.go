// Package profile is what flix services share about profiles, the data of
// the profiles service: the syntax of a profile id, the signed-in profile
// a request carries, and what a profile may watch, as the profiles service
// states it.
//
// Who the signed-in profile is comes only from the request's user token,
// which the gateway mints after verifying the sign-in token and the
// service's identity.Guard verifies: never from a header a caller could
// set. A request without one is answered 401 by every profile route.
//
// The maturity rule (which title ratings a kids, teen or adult profile may
// watch) lives in the profiles service alone: it sends every profile with
// the list of title maturities it may watch (Rights.MayWatch), and callers
// check a title against that list. A caller never decides who may watch
// what, so the rule changes in one service.
package profile

import (
	"fmt"
	"net/http"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/identity"
)

// SignIn is how the gateway says it verified a profile: the sign-in token
// profiles issued (the user token's auth, as identity.User.Auth has it). A
// user the gateway let in with an API key is not a profile.
const SignIn = "jwt"

// MaxIDLen is the longest profile id.
const MaxIDLen = 64

// CheckID reports whether id is a well-formed profile id: 1 to MaxIDLen
// ASCII letters, digits, '-', '_' or '.'.
func CheckID(id string) error {
	if !ValidID(id, MaxIDLen) {
		return fmt.Errorf("profile %q: want 1 to %d letters, digits, '-', '_' or '.'", id, MaxIDLen)
	}
	return nil
}

// ValidID reports whether s is 1 to maxLen ASCII letters, digits, '-', '_'
// or '.': the ids flix services put in paths and keys.
func ValidID(s string, maxLen int) bool {
	ok := len(s) >= 1 && len(s) <= maxLen
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	return ok
}

// Signed returns the profile signed in for r: the user of its user token,
// which the service's identity.Guard verified (identity.UserFrom), if the
// gateway verified a sign-in for it. A request for no one (a call from
// another service made on its own behalf) has none, and neither has one
// whose only claim is a header: profile routes refuse both.
func Signed(r *http.Request) (string, bool) {
	u, ok := identity.UserFrom(r.Context())
	if !ok || u.Auth != SignIn {
		return "", false
	}
	return u.Subject, true
}

// FromPath reads the profile id of path wildcard name. It answers 400 and
// returns false if the id is malformed, 401 if no profile is signed in,
// and 403 if another one is.
func FromPath(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := r.PathValue(name)
	if err := CheckID(id); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", false
	}
	if _, ok := shoal.RequireSelf(w, r, id, SignIn); !ok {
		return "", false
	}
	return id, true
}

// Permits reports whether r may act for profile id: that profile is
// signed in.
func Permits(r *http.Request, id string) bool {
	sub, ok := Signed(r)
	return ok && sub == id
}

// Of returns the profile a request is about: the path's wildcard name, as
// FromPath reads it, or on a route without that wildcard the signed-in
// profile (401 without one). Answered, it returns false.
func Of(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	if r.PathValue(name) != "" {
		return FromPath(w, r, name)
	}
	u, ok := shoal.RequireUser(w, r, SignIn)
	if !ok {
		return "", false
	}
	if err := CheckID(u.Subject); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", false
	}
	return u.Subject, true
}
