package gateway

// Headers the gateway sets on every request: the verified identity, the
// request ID and the trace context.

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
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
	if ids := r.Header[requestIDKey]; len(ids) == 1 && saneID(ids[0]) {
		return ids[0]
	}
	id := hexID(1)
	r.Header[requestIDKey] = []string{id}
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
	if vs := h["Traceparent"]; len(vs) == 1 && validTraceparent(vs[0]) {
		return
	}
	delete(h, "Tracestate") // it belongs to the trace being replaced
	h["Traceparent"] = []string{newTraceparent()}
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

// newTraceparent starts a trace: version 00, a random trace and parent ID,
// sampled.
func newTraceparent() string {
	var b [55]byte
	copy(b[:], "00-")
	putHex(b[3:19])
	putHex(b[19:35])
	b[35] = '-'
	putHex(b[36:52])
	copy(b[52:], "-01")
	return string(b[:])
}

// putHex fills b (16 bytes) with random hex digits.
func putHex(b []byte) {
	const digits = "0123456789abcdef"
	v := rand.Uint64()
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
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
// as long as the caller wants: a WebSocket upgrade (the only one
// forwarded), or server-sent events (EventSource sends Accept:
// text/event-stream).
func wantsStream(h http.Header) bool {
	return h["Upgrade"] != nil && forwardedUpgrade(h) != "" || strings.Contains(headerValue(h, "Accept"), "text/event-stream")
}

// streaming reports whether resp is a stream: switched protocols or
// server-sent events.
func streaming(resp *http.Response) bool {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return true
	}
	return eventStream(resp.Header)
}

// eventStream reports whether a response's Content-Type is
// text/event-stream (server-sent events), parameters aside.
func eventStream(h http.Header) bool {
	mt, _, _ := strings.Cut(headerValue(h, "Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// headerValue is h.Get(k) for a canonical k, without canonicalising it
// again (a tenth of a microsecond each, many times a request).
func headerValue(h http.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
