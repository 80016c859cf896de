package idempotency

import "net/http"

// Principal is who a request comes from, as far as its key goes: the
// calling service and the end user it acts for. Keys are unique per
// principal: a stored answer is replayed only to requests of the principal
// that got it, so a key chosen by someone else (by chance or on purpose)
// never returns their answer, nor tells that they used the key.
type Principal struct {
	// Caller is the calling service, as the SDK verified it; empty while
	// calls between services are not authenticated.
	Caller string
	// Subject is the end user the request acts for, as the gateway
	// verified it; empty for a service's own calls.
	Subject string
}

// SubjectHeader carries the subject the gateway verified (a token's
// subject, an API key's name); the gateway sets it and strips copies that
// clients send.
const SubjectHeader = "Shoal-Subject"

// HeaderPrincipal is Config.Principal's default: no caller (calls between
// services carry no verified identity yet), and the subject from
// SubjectHeader. A Config.Principal backed by a verified caller identity
// takes its place where there is one.
func HeaderPrincipal(r *http.Request) Principal {
	return Principal{Subject: r.Header.Get(SubjectHeader)}
}
