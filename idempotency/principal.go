package idempotency

import (
	"net/http"

	"github.com/shoal-dev/shoal/identity"
)

// Principal is who a request comes from, as far as its key goes: the
// calling service and the end user it acts for. Keys are unique per
// principal: a stored answer is replayed only to requests of the principal
// that got it, so a key chosen by someone else (by chance or on purpose)
// never returns their answer, nor tells that they used the key.
type Principal struct {
	// Caller is the calling service, as the SDK verified it; empty for a
	// request that passed no identity.Guard (an instance without an
	// identity).
	Caller string
	// Subject is the end user the request acts for, as the gateway
	// verified it; empty for a service's own calls.
	Subject string
}

// SubjectHeader carries the subject the gateway verified (a token's
// subject, an API key's name); the gateway sets it and strips copies that
// clients send.
const SubjectHeader = "Shoal-Subject"

// VerifiedPrincipal is Config.Principal's default: the calling service and
// the end user as the service's identity.Guard verified them
// (identity.CallerFrom, identity.UserFrom), which no header can forge. A
// request that passed no Guard, because the instance has no identity
// (plain HTTP, tests), gets HeaderPrincipal's answer instead.
func VerifiedPrincipal(r *http.Request) Principal {
	caller, fromService := identity.CallerFrom(r.Context())
	user, forUser := identity.UserFrom(r.Context())
	if !fromService && !forUser {
		return HeaderPrincipal(r)
	}
	var p Principal
	if fromService {
		p.Caller = caller.Service
	}
	if forUser {
		p.Subject = user.Subject
	}
	return p
}

// HeaderPrincipal is the principal of an instance without an identity: no
// caller, and the subject from SubjectHeader, which only the gateway's word
// vouches for (any program that reaches the instance may set it). Behind a
// Guard, VerifiedPrincipal takes its place.
func HeaderPrincipal(r *http.Request) Principal {
	return Principal{Subject: r.Header.Get(SubjectHeader)}
}
