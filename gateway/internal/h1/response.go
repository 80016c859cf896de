package h1

import (
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Body is how a response's body is delimited (RFC 9112 §6.3).
type Body uint8

const (
	// NoBody: HEAD, 1xx, 204, 304, or Content-Length: 0.
	NoBody Body = iota
	// Length: Content-Length bytes.
	Length
	// Chunked: chunked transfer coding, trailers after it.
	Chunked
	// UntilClose: everything until the server closes the connection.
	UntilClose
)

// ParseResponse parses a response head (status line and header section
// up to the empty line's CRLF) sent in answer to a request with method.
// It returns the response without Body, how its body is delimited, and
// sets resp.Close when the connection cannot carry another message after
// it. A 1xx (informational) response has no body and is followed by
// another head.
func ParseResponse(head, method string) (*http.Response, Body, error) {
	eol := indexCRLF(head)
	if eol < 0 {
		return nil, 0, ErrMalformed
	}
	line := head[:eol]
	proto, rest, ok := strings.Cut(line, " ")
	major, minor, vok := version(proto)
	if !ok || !vok || len(rest) < 3 {
		return nil, 0, ErrMalformed
	}
	code := 0
	for i := range 3 {
		c := rest[i]
		if c < '0' || c > '9' {
			return nil, 0, ErrMalformed
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || len(rest) > 3 && rest[3] != ' ' {
		return nil, 0, ErrMalformed
	}
	resp := &http.Response{
		Status: rest, StatusCode: code, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: make(http.Header, 8),
	}
	if len(rest) == 3 {
		resp.Status = rest + " " + http.StatusText(code) // what net/http shows for a bare code
	}
	if err := parseFields(head[eol+2:], resp.Header); err != nil {
		return nil, 0, err
	}
	conn := resp.Header["Connection"]
	resp.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified || method == http.MethodHead {
		// No body whatever the headers say; a HEAD response keeps the
		// length a GET would have had.
		if method == http.MethodHead && code >= 200 {
			if cl := resp.Header["Content-Length"]; len(cl) == 1 {
				if n, ok := parseLength(cl[0]); ok {
					resp.ContentLength = n
				}
			}
		}
		return resp, NoBody, nil
	}
	if code == http.StatusSwitchingProtocols {
		return resp, NoBody, nil
	}
	resp.ContentLength = -1
	if len(resp.Header["Content-Length"]) == 0 && len(resp.Header["Transfer-Encoding"]) == 0 {
		resp.Close = true
		return resp, UntilClose, nil
	}
	if err := framing(resp.Header, minor, &resp.ContentLength, &resp.TransferEncoding); err != nil {
		return nil, 0, err
	}
	if resp.TransferEncoding != nil {
		var err error
		if resp.Trailer, err = announcedTrailer(resp.Header); err != nil {
			return nil, 0, err
		}
		return resp, Chunked, nil
	}
	if resp.ContentLength == 0 {
		return resp, NoBody, nil
	}
	return resp, Length, nil
}
