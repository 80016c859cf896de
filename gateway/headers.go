package gateway

// Headers the gateway sets on every request: the verified identity, the
// request ID and the trace context.

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal"
)

// setIdentity tells the service who the caller is.
func setIdentity(h http.Header, id Identity) {
	if id.Subject != "" {
		h.Set(SubjectHeader, id.Subject)
	}
	if v := id.authHeader(); v != "" {
		h.Set(AuthHeader, v)
	}
}

// clientIP is the address the request came from (never a header the
// client could set).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// requestID returns the request's X-Request-Id, setting a new one when it
// has none or one that is not sane (at most 128 printable ASCII
// characters): the ID ends up in logs and headers.
func requestID(r *http.Request) string {
	id := r.Header.Get(shoal.RequestIDHeader)
	if saneID(id) && len(r.Header.Values(shoal.RequestIDHeader)) == 1 {
		return id
	}
	id = hexID(1)
	r.Header.Set(shoal.RequestIDHeader, id)
	return id
}

func saneID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// traceContext keeps a valid W3C traceparent and starts a new trace
// otherwise (sampled, so that services which trace record it).
func traceContext(h http.Header) {
	if vs := h.Values("Traceparent"); len(vs) == 1 && validTraceparent(vs[0]) {
		return
	}
	h.Del("Tracestate") // it belongs to the trace being replaced
	h.Set("Traceparent", "00-"+hexID(2)+"-"+hexID(1)+"-01")
}

// validTraceparent checks version-traceid-parentid-flags: lowercase hex,
// ids not all zero, version ff invalid; a version above 00 may append
// fields.
func validTraceparent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	ver := s[:2]
	if !lowerHex(ver) || ver == "ff" || len(s) > 55 && (ver == "00" || s[55] != '-') {
		return false
	}
	id, parent := s[3:35], s[36:52]
	return lowerHex(id) && lowerHex(parent) && lowerHex(s[53:55]) &&
		strings.Trim(id, "0") != "" && strings.Trim(parent, "0") != ""
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// hexID returns 16×n random hex digits. IDs correlate logs and traces:
// they must be unique in practice, not unpredictable, so math/rand/v2
// serves (as for the SDK's request IDs).
func hexID(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16*n)
	for j := range n {
		v := rand.Uint64()
		for i := 16*j + 15; i >= 16*j; i-- {
			b[i] = digits[v&15]
			v >>= 4
		}
	}
	return string(b)
}

// wantsStream reports whether the request asks for a response that lasts
// as long as the caller wants: an upgrade (WebSocket), or server-sent
// events (EventSource sends Accept: text/event-stream).
func wantsStream(h http.Header) bool {
	return h.Get("Upgrade") != "" || strings.Contains(h.Get("Accept"), "text/event-stream")
}

// streaming reports whether resp is a stream: switched protocols or
// server-sent events.
func streaming(resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}
