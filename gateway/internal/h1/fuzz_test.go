package h1

import (
	"fmt"
	"strings"
	"testing"
)

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }

// FuzzRequestAgreesWithNetHTTP: the parser never panics, and whatever it
// accepts (head and body), net/http's server accepts and reads the same
// way: same method, target, URL, host, headers, framing, body and
// trailers. Refusing more than net/http is allowed (that is the point);
// accepting what it refuses, or reading it differently, is a bug.
func FuzzRequestAgreesWithNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:80\r\nAccept: */*\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;a=\"b\"\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
		"GET /%41%2f?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\nHost: other\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, body, err := readRequest(in)
		if err != nil {
			return
		}
		want, wantBody, err := netHTTPRequest(in)
		if err != nil {
			t.Fatalf("we accept %q, net/http refuses it: %v", in, err)
		}
		if diff := compareRequests(r, body, want, wantBody); diff != "" {
			t.Fatalf("%q read differently:\n%s", in, diff)
		}
	})
}

// FuzzResponse: the response parser and the chunked reader never panic on
// what an upstream sends.
func FuzzResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n0\r\nX: y\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "abc")
	f.Fuzz(func(t *testing.T, head, rest string) {
		rd := NewReader(stringsReader(head+rest), 32)
		h, err := rd.ReadHead(1 << 12)
		if err != nil {
			return
		}
		resp, kind, err := ParseResponse(h, "GET")
		if err != nil {
			return
		}
		if kind == Chunked {
			b := &ChunkedBody{R: rd, Trailer: &resp.Trailer}
			buf := make([]byte, 7)
			for {
				if _, err := b.Read(buf); err != nil {
					break
				}
			}
		}
	})
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
