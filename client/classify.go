package client

import (
	"errors"
	"net"
	"net/http"
	"syscall"
)

// failure is how an attempt went wrong, which decides whether another
// instance may be tried.
type failure uint8

const (
	noFailure  failure = iota
	notSent            // never reached the instance: always safe to retry
	timedOut           // per-attempt timeout: the instance may have done the work
	broken             // connection failed after (maybe) sending: may have done the work
	badGateway         // 502, 503 or 504: retry idempotent requests elsewhere
	callDone           // the caller's own deadline or cancellation: final
	hedgeLost          // canceled because another attempt of the call answered
)

// classifyErr sorts a transport error. Only errors that prove the request
// never left (dialing failed, connection refused, name lookup failed) are
// notSent; http.Transport already replays idempotent requests on a reused
// connection the server closed, so anything else may have reached the server.
func classifyErr(err error) failure {
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &op) && op.Op == "dial",
		errors.Is(err, syscall.ECONNREFUSED),
		errors.As(err, &dns):
		return notSent
	}
	return broken
}

// classifyStatus sorts an answer. Only 502/503/504 say "this instance could
// not serve it" in a way another instance might fix.
func classifyStatus(code int) failure {
	switch code {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return badGateway
	}
	return noFailure
}

// retryable reports whether a failure of this kind may be retried on another
// instance for a request that is (or is not) idempotent.
func retryable(f failure, idempotent bool) bool {
	switch f {
	case notSent:
		return true
	case timedOut, broken, badGateway:
		return idempotent
	}
	return false
}

// idempotent reports whether repeating r is harmless: an idempotent method
// (RFC 9110 §9.2.2) or an Idempotency-Key the server deduplicates on.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// replayable reports whether r's body can be sent again.
func replayable(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
}
