package identity

import (
	"context"
	"encoding/json"
	"net/http"
)

// Guard is the server side's authentication and authorization, as
// middleware: every request must carry a verified caller identity (the
// mutual-TLS certificate of a service of the system) or a valid user token,
// and the caller must be allowed to call this service.
//
//   - A caller with a certificate is allowed if Policy allows its service
//     to call Self's. A user token it carries must also be valid (a bad one
//     is refused, never ignored: a handler must not mistake a forged user
//     for "no user").
//   - A request without a verified certificate (only possible on a listener
//     that does not require one) needs a valid user token, and its issuer
//     (the gateway) stands as the caller for the Policy check.
//   - Anything else is refused with 401 (no or bad credentials) or 403 (not
//     allowed), before the handler runs.
//
// Event deliveries (POST /_events) are ordinary calls: the publisher's
// certificate identifies it, and the Policy lists the publishers each
// subscriber accepts. No user token is needed; a delivery is not made on a
// user's behalf at the moment it is sent.
//
// Handlers read who called with [CallerFrom] and for whom with [UserFrom];
// calls they make on the user's behalf carry the token on with
// [ForwardUser]. A Guard is usable as constructed: fill the fields, call
// Wrap, and do not change them afterwards.
type Guard struct {
	// Self is this service's identity; its trust domain is the only one
	// accepted.
	Self ID
	// Policy says which services may call Self. Nil: any service of the
	// system.
	Policy *Policy
	// Tokens verifies user tokens. Nil: requests carrying one are refused.
	Tokens *TokenVerifier
	// Deny writes a refusal; nil writes Shoal's JSON error body
	// ({"error": {"code": ..., "message": ...}}). The SDK sets its own.
	Deny func(w http.ResponseWriter, r *http.Request, status int, code, msg string)
}

// Error codes a Guard refuses with.
const (
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
)

type ctxKey struct{}

// principal is what a Guard verified about a request.
type principal struct {
	caller ID // zero when the request came without a certificate
	user   *User
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p principal
		caller, err := PeerFromRequest(r)
		if err == nil {
			if caller.TrustDomain != g.Self.TrustDomain {
				g.deny(w, r, http.StatusForbidden, CodeForbidden, caller.String()+" is not in system "+g.Self.TrustDomain)
				return
			}
			p.caller = caller
		}
		if toks := r.Header.Values(UserTokenHeader); len(toks) > 0 {
			if len(toks) > 1 || g.Tokens == nil {
				g.deny(w, r, http.StatusUnauthorized, CodeUnauthenticated, "user token not accepted here")
				return
			}
			u, err := g.Tokens.Verify(toks[0])
			if err != nil {
				g.deny(w, r, http.StatusUnauthorized, CodeUnauthenticated, err.Error())
				return
			}
			p.user = &u
		}
		who := p.caller
		switch {
		case !who.IsZero():
		case p.user != nil:
			who = p.user.Issuer
		default:
			g.deny(w, r, http.StatusUnauthorized, CodeUnauthenticated,
				"call with a certificate of system "+g.Self.TrustDomain+" or a user token")
			return
		}
		if !g.Policy.Allows(who.Service, g.Self.Service) {
			g.deny(w, r, http.StatusForbidden, CodeForbidden, who.Service+" may not call "+g.Self.Service)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &p)))
	})
}

func (g *Guard) deny(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if g.Deny != nil {
		g.Deny(w, r, status, code, msg)
		return
	}
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error detail `json:"error"`
	}{detail{code, msg}})
}

// CallerFrom returns the verified identity of the service that made the
// request, as a Guard found it. False when the request came without a
// certificate (on a user token alone) or did not pass a Guard.
func CallerFrom(ctx context.Context) (ID, bool) {
	p, _ := ctx.Value(ctxKey{}).(*principal)
	if p == nil || p.caller.IsZero() {
		return ID{}, false
	}
	return p.caller, true
}

// UserFrom returns the user a request was made for, as a Guard verified it
// from the request's user token.
func UserFrom(ctx context.Context) (User, bool) {
	p, _ := ctx.Value(ctxKey{}).(*principal)
	if p == nil || p.user == nil {
		return User{}, false
	}
	return *p.user, true
}

// ForwardUser sets the user token of the request being served (ctx) on h,
// the headers of a call made on that user's behalf. It does nothing for a
// request made for no user. The SDK's client calls it for every outgoing
// request.
func ForwardUser(ctx context.Context, h http.Header) {
	if u, ok := UserFrom(ctx); ok {
		h.Set(UserTokenHeader, u.Token)
	}
}
