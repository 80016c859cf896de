// Package profile is what flix services share about profiles, the data of
// the profiles service: the syntax of a profile id, the signed-in profile
// a request carries, and what a profile may watch, as the profiles service
// states it.
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
)

// SubjectHeader carries the profile id the gateway verified in the caller's
// token; the gateway strips copies sent by clients. Requests from other
// services inside the system come without it.
const SubjectHeader = "Shoal-Subject"

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

// FromPath reads the profile id of path wildcard name. It answers 400 and
// returns false if the id is malformed, 403 if the request comes from a
// signed-in profile (SubjectHeader) that is another one.
func FromPath(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	id := r.PathValue(name)
	if err := CheckID(id); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", false
	}
	if !Permits(r, id) {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", id))
		return "", false
	}
	return id, true
}

// Permits reports whether r may act for profile id: it comes from inside
// the system (no SubjectHeader), or from that profile signed in.
func Permits(r *http.Request, id string) bool {
	sub := r.Header.Get(SubjectHeader)
	return sub == "" || sub == id
}

// Of returns the profile a request is about: the path's wildcard name, as
// FromPath reads it, or on a route without that wildcard the signed-in
// profile, the request's SubjectHeader (401 without one, 400 if
// malformed). Answered, it returns false.
func Of(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	if r.PathValue(name) != "" {
		return FromPath(w, r, name)
	}
	sub := r.Header.Get(SubjectHeader)
	if sub == "" {
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated",
			"no signed-in profile: call through the gateway with a token from POST /signin")
		return "", false
	}
	if err := CheckID(sub); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", false
	}
	return sub, true
}
