package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Reasons a call stopped without a response. Match them with errors.Is.
var (
	// ErrNoInstances: the catalog knows no instance of the service.
	ErrNoInstances = errors.New("no instances known")
	// ErrBudgetExhausted: a retry was warranted but the service's retry
	// budget was spent; the dependency is failing for many callers.
	ErrBudgetExhausted = errors.New("retry budget exhausted")
	// ErrAttemptTimeout: one attempt ran past its explicit per-try timeout
	// (Config.PerTryTimeout, CallPolicy.PerTryTimeout).
	ErrAttemptTimeout = errors.New("attempt timed out")
	// ErrThrottled: the service has been refusing or failing most calls
	// lately, so the adaptive throttle rejected this one without sending it.
	ErrThrottled = errors.New("throttled: the service is failing most calls")
	// ErrBulkheadFull: the service already had Config.MaxInFlight calls in
	// flight from this Transport.
	ErrBulkheadFull = errors.New("bulkhead full: too many calls in flight to the service")
)

// Attempt is one try of a call on one instance.
type Attempt struct {
	Instance string        // instance ID
	Addr     string        // host:port tried
	Err      error         // what went wrong (nil if it succeeded); a *StatusError for a 502/503/504
	Start    time.Time     // when it was sent
	Duration time.Duration // until the response headers or the failure
}

// StatusError is an attempt that got an answer, but a server failure.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s", e.Code, http.StatusText(e.Code))
}

// Error is returned when a call ends with no response. It names the service
// and keeps every attempt; errors.Is and errors.As see through to the reason
// and to each attempt's error (so errors.Is(err, syscall.ECONNREFUSED) works).
type Error struct {
	Service  string
	Method   string
	URL      string // as the caller wrote it, with the service name as host
	Attempts []Attempt
	Err      error // why the call stopped: ErrNoInstances, ErrBudgetExhausted, a context error, or the last attempt's error
}

func (e *Error) Error() string {
	var b strings.Builder
	// Method and URL are left to the *url.Error that http.Client wraps
	// this in; they are in the fields for RoundTrip's direct callers.
	fmt.Fprintf(&b, "service %q: ", e.Service)
	switch len(e.Attempts) {
	case 0:
		b.WriteString(e.Err.Error())
		return b.String()
	case 1:
		b.WriteString("1 attempt failed")
	default:
		fmt.Fprintf(&b, "%d attempts failed", len(e.Attempts))
	}
	if last := e.Attempts[len(e.Attempts)-1].Err; e.Err != nil && e.Err != last {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	for i, a := range e.Attempts {
		fmt.Fprintf(&b, "; [%d] %s at %s after %v: %v", i+1, a.Instance, a.Addr, a.Duration.Round(time.Microsecond), a.Err)
	}
	return b.String()
}

// Unwrap returns the reason followed by every attempt's error.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, len(e.Attempts)+1)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	for _, a := range e.Attempts {
		errs = append(errs, a.Err)
	}
	return errs
}
