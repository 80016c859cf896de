package h1

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// ParseRequest parses a request head: the request line and the header
// section up to and including the empty line's CRLF (as Reader.ReadHead
// returns it). The result is what net/http's server makes of the same
// bytes, without Body, RemoteAddr or context: Host moved out of Header,
// Trailer announced, Close and ContentLength (-1 for chunked) set.
//
// Errors: ErrMalformed (400), ErrHeadTooLarge (431, too many fields),
// ErrBadContentLength and ErrSmuggling (400), ErrUnsupportedTE (501).
func ParseRequest(head string) (*http.Request, error) {
	eol := indexCRLF(head)
	if eol < 0 {
		return nil, ErrMalformed
	}
	method, rest, ok1 := strings.Cut(head[:eol], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !validToken(method) || !validTarget(target) {
		return nil, ErrMalformed
	}
	major, minor, ok := version(proto)
	if !ok {
		return nil, ErrMalformed
	}
	r := &http.Request{
		Method: method, RequestURI: target, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: make(http.Header, 8),
	}
	var err error
	if r.URL, err = requestURL(method, target); err != nil {
		return nil, ErrMalformed
	}
	if err := parseFields(head[eol+2:], r.Header); err != nil {
		return nil, err
	}
	hosts := r.Header["Host"]
	switch {
	case len(hosts) > 1:
		return nil, ErrMalformed
	case len(hosts) == 0 && minor == 1 && method != "CONNECT":
		return nil, ErrMalformed // RFC 9112 §3.2: an HTTP/1.1 request names its host
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return nil, ErrMalformed
	}
	r.Host = r.URL.Host
	if r.Host != "" && !httpguts.ValidHostHeader(r.Host) {
		return nil, ErrMalformed // an absolute-form or CONNECT target's authority is the Host
	}
	if r.Host == "" && len(hosts) == 1 {
		r.Host = hosts[0]
	} else if !httpguts.ValidHostHeader(r.Host) {
		return nil, ErrMalformed // an absolute-form target's host is checked as a Host field is
	}
	delete(r.Header, "Host")
	if pragma := r.Header["Pragma"]; len(pragma) > 0 && pragma[0] == "no-cache" && r.Header["Cache-Control"] == nil {
		r.Header["Cache-Control"] = []string{"no-cache"} // as net/http does (RFC 7234 §5.4)
	}
	conn := r.Header["Connection"]
	r.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	if err := framing(r.Header, minor, &r.ContentLength, &r.TransferEncoding); err != nil {
		return nil, err
	}
	if r.TransferEncoding != nil {
		if r.Trailer, err = announcedTrailer(r.Header); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// validTarget reports whether a request-target has only visible ASCII:
// no controls, spaces or bytes above 0x7e, which no URI holds.
func validTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// version parses "HTTP/1.0" or "HTTP/1.1". Other versions are not this
// syntax: HTTP/2 has its own preface, and there is no HTTP/1.2.
func version(p string) (major, minor int, ok bool) {
	switch p {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	return 0, 0, false
}

// requestURL is net/http's reading of a request-target: url.ParseRequestURI,
// with CONNECT's authority-form as the URL's host. An origin-form target of
// plain path characters, nearly every request, is read without it.
func requestURL(method, target string) (*url.URL, error) {
	if method == "CONNECT" && target[0] != '/' {
		u, err := url.ParseRequestURI("http://" + target)
		if err != nil {
			return nil, err
		}
		u.Scheme = ""
		return u, nil
	}
	if target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		if plainPath(path) {
			return &url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}, nil
		}
	}
	return url.ParseRequestURI(target)
}

// plainPath reports whether p holds only characters that url.URL keeps as
// they are in both Path and EscapedPath (letters, digits, "-._~" and
// "$&+,/:;=@"), so that parsing it would give Path == p and no RawPath.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~/$&+,;=:@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// framing reads how a message's body is delimited from Content-Length and
// Transfer-Encoding (RFC 9112 §6), for a request, or a response whose
// status and request method allow a body: *cl is the declared length, -1
// for chunked (te is then ["chunked"]); 0 when neither is present.
//
// It is strict where net/http is lenient and two hops may disagree: a
// repeated Content-Length (even with equal values), one that is not plain
// digits, both headers together, and any transfer coding but a single
// "chunked" are errors, as is Transfer-Encoding in HTTP/1.0.
func framing(h http.Header, minor int, cl *int64, te *[]string) error {
	cls, tes := h["Content-Length"], h["Transfer-Encoding"]
	switch {
	case len(tes) > 0 && (len(cls) > 0 || minor == 0):
		// RFC 9112 §6.1: faulty framing; and HTTP/1.0 has no transfer
		// codings, so its recipients may read the body differently.
		return ErrSmuggling
	case len(tes) > 0:
		if len(tes) != 1 || !strings.EqualFold(tes[0], "chunked") {
			return ErrUnsupportedTE
		}
		delete(h, "Transfer-Encoding")
		*cl, *te = -1, []string{"chunked"}
		return nil
	case len(cls) > 1:
		return ErrBadContentLength
	case len(cls) == 1:
		n, ok := parseLength(cls[0])
		if !ok {
			return ErrBadContentLength
		}
		*cl = n
	}
	return nil
}

// parseLength parses a Content-Length: 1 to 18 decimal digits (far beyond
// any real body, and no overflow).
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// announcedTrailer is the Trailer map net/http makes of a chunked message's
// Trailer header: the announced names with nil values, filled in as the
// trailer section is read. Framing fields may not be trailers.
func announcedTrailer(h http.Header) (http.Header, error) {
	vv, ok := h["Trailer"]
	if !ok {
		return nil, nil
	}
	delete(h, "Trailer")
	var t http.Header
	for _, v := range vv {
		for _, name := range strings.Split(v, ",") {
			name = textprotoTrim(name)
			if name == "" {
				continue
			}
			name = http.CanonicalHeaderKey(name)
			switch name {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, ErrMalformed
			}
			if t == nil {
				t = make(http.Header)
			}
			t[name] = nil
		}
	}
	return t, nil
}

// textprotoTrim trims the whitespace net/http's header element splitting
// trims.
func textprotoTrim(s string) string {
	return strings.Trim(s, " \t\n\r")
}
