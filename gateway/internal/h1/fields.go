// Package h1 is the HTTP/1.1 message syntax of RFC 9112 as the gateway's
// own engine reads and writes it: request and response heads parsed
// strictly into net/http's types, and chunked bodies with trailers. It is
// stricter than net/http wherever a lenient reading lets two hops disagree
// on where a message ends (request smuggling): a bare LF, obs-fold,
// whitespace before a colon, a duplicate or malformed Content-Length,
// Content-Length with Transfer-Encoding, and bad chunk lines are all
// errors. What it accepts, net/http accepts and reads the same way
// (FuzzRequestAgreesWithNetHTTP).
package h1

import (
	"errors"
	"net/http"
	"net/textproto"
)

// Errors of the syntax. A server answers ErrHeadTooLarge with 431, an
// unsupported transfer coding with 501 and everything else with 400.
var (
	ErrMalformed        = errors.New("h1: malformed message")
	ErrHeadTooLarge     = errors.New("h1: message head too large")
	ErrUnsupportedTE    = errors.New("h1: unsupported transfer coding")
	ErrBadContentLength = errors.New("h1: bad Content-Length")
	ErrSmuggling        = errors.New("h1: both Content-Length and Transfer-Encoding")
	ErrBadChunk         = errors.New("h1: malformed chunked encoding")
)

// tchar reports the token characters of RFC 9110 §5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validToken reports whether s is a non-empty token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// fieldVchar reports bytes allowed in a field value (RFC 9110 §5.5):
// visible ASCII, SP, HTAB and obs-text; never NUL, CR, LF or other CTLs.
func fieldVchar(c byte) bool { return c >= 0x20 && c != 0x7f || c == '\t' }

// maxFields bounds the header (or trailer) fields of one message, so that a
// head of many tiny fields costs little to refuse.
const maxFields = 256

// parseFields reads the field lines of head, which starts at a field line
// (or at the empty line) and ends with the empty line's CRLF, into h. Keys
// are canonicalised as net/http does; values are trimmed of OWS and share
// head's storage. It returns ErrMalformed for anything RFC 9112 §5 says to
// reject, including obs-fold and whitespace before the colon.
func parseFields(head string, h http.Header) error {
	// The values' slices are cut from one array, each with capacity 1
	// (Add copies rather than writing into a neighbour): one allocation for
	// a typical head instead of one per field.
	vals := make([]string, 0, 16)
	n := 0
	for {
		eol := indexCRLF(head)
		if eol < 0 {
			return ErrMalformed
		}
		if eol == 0 {
			if len(head) != 2 {
				return ErrMalformed // bytes after the empty line: the caller cut wrong
			}
			return nil
		}
		line := head[:eol]
		head = head[eol+2:]
		if n++; n > maxFields {
			return ErrHeadTooLarge
		}
		colon := -1
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == ':' {
				colon = i
				break
			}
			if !tchar[c] {
				return ErrMalformed // obs-fold (leading SP/HTAB), space before the colon, bad name
			}
		}
		if colon <= 0 {
			return ErrMalformed
		}
		v := line[colon+1:]
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		for i := 0; i < len(v); i++ {
			if !fieldVchar(v[i]) {
				return ErrMalformed
			}
		}
		key := canonicalKey(line[:colon])
		if vs := h[key]; vs != nil {
			h[key] = append(vs, v)
			continue
		}
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// indexCRLF returns the index of the first CRLF in s, or -1. A bare LF (or
// CR) before it makes the line invalid, reported as -1 too: RFC 9112 lets
// a recipient accept a bare LF, and the disagreement between those that do
// and those that do not is what smuggling is made of.
func indexCRLF(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return -1
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				return i
			}
			return -1
		}
	}
	return -1
}

// canonicalKey returns name in net/http's canonical form, without
// allocating when it already is (or is a common header).
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name) // interns the common ones
		}
		upper = c == '-'
	}
	return name
}
