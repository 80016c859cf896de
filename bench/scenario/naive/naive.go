// Package naive is the baseline client the scenario runner (bench/scenario)
// compares Shoal's client against: what a service does with a static list of
// addresses and a retry loop. It rotates round robin over the addresses and
// retries on the next one, up to a fixed count, on any error or 5xx. It has
// no retry budget, no ejection, no per-try timeout: the caller's deadline is
// the only bound.
package naive

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// DefaultRetries is the retries after the first attempt: 4 tries in all.
const DefaultRetries = 3

// Transport is an http.RoundTripper sending each request to the next of a
// fixed list of host:port addresses, whatever host the URL names.
type Transport struct {
	addrs   []string
	retries int
	next    atomic.Uint64
	base    *http.Transport
}

// New returns a Transport over addrs that retries up to retries times.
func New(addrs []string, retries int) *Transport {
	return &Transport{addrs: addrs, retries: retries, base: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// RoundTrip tries the next address, then the ones after it, until one
// answers below 500, the retries are spent or the request's context ends.
// The last response or error is returned as is.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		addr := t.addrs[(t.next.Add(1)-1)%uint64(len(t.addrs))]
		out := req.Clone(req.Context())
		u := *req.URL
		u.Host = addr
		out.URL = &u
		if n > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, &url.Error{Op: req.Method, URL: req.URL.String(), Err: err}
			}
			out.Body = body
		}
		resp, err := t.base.RoundTrip(out)
		if err == nil && resp.StatusCode < 500 {
			return resp, nil
		}
		if n >= t.retries || req.Context().Err() != nil {
			return resp, err
		}
		if resp != nil {
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
	}
}

// CloseIdleConnections closes the idle connections to every address.
func (t *Transport) CloseIdleConnections() { t.base.CloseIdleConnections() }
