package client

import (
	"net/http"

	"github.com/shoal-dev/shoal/chaos"
)

// Request-scoped faults (package chaos) ride on the call's context, where
// the SDK's server put the verified token of the request being served: the
// token goes on to the callee in the Shoal-Fault header, and the faults of
// the link from this service to the callee apply to each attempt, between
// the balancer and the instance, as a misbehaving network would. Calls
// without a token pay one context lookup.

// faultHeader carries the call's fault token on to the callee.
func (c *call) faultHeader(h http.Header) {
	if c.fault != nil {
		h[chaos.Header] = []string{c.fault.Token()}
	}
}

// send is an attempt's round trip through base, with the call's link
// faults to service applied.
func (c *call) send(base http.RoundTripper, req *http.Request, service string) (*http.Response, error) {
	if c.fault != nil {
		if fs := c.fault.Link(service); len(fs) > 0 {
			return chaos.RoundTrip(base, req, fs)
		}
	}
	return base.RoundTrip(req)
}
