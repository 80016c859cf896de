package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/net/http/httpguts"
)

// readRequest reads one request, head and body, as the engine does.
func readRequest(src string) (*http.Request, []byte, error) {
	rd := NewReader(iotest.HalfReader(strings.NewReader(src)), 64)
	head, err := rd.ReadHead(1 << 16)
	if err != nil {
		return nil, nil, err
	}
	r, err := ParseRequest(head)
	if err != nil {
		return nil, nil, err
	}
	var body io.Reader = http.NoBody
	switch {
	case r.ContentLength > 0:
		body = &LimitedBody{R: rd, N: r.ContentLength}
	case r.ContentLength < 0:
		body = &ChunkedBody{R: rd, Trailer: &r.Trailer}
	}
	b, err := io.ReadAll(body)
	return r, b, err
}

func TestParseRequest(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		err      error // nil: accepted
	}{
		{"simple", "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n", nil},
		{"length", "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", nil},
		{"chunked", "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\n", nil},
		{"escaped path", "GET /a%2Fb/c HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"http/1.0 without host", "GET / HTTP/1.0\r\n\r\n", nil},
		{"no host", "GET / HTTP/1.1\r\n\r\n", ErrMalformed},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ErrMalformed},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrMalformed},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ErrSmuggling},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", ErrBadContentLength},
		{"CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc", ErrBadContentLength},
		{"CL sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", ErrBadContentLength},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", ErrUnsupportedTE},
		{"TE twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrUnsupportedTE},
		{"TE list", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrUnsupportedTE},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", ErrMalformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", ErrMalformed},
		{"bad name", "GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n", ErrMalformed},
		{"empty name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", ErrMalformed},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", ErrMalformed},
		{"bare LF in head", "GET / HTTP/1.1\nHost: h\r\n\r\n", ErrMalformed},
		{"bare LF ending head", "GET / HTTP/1.1\r\nHost: h\n\n", ErrMalformed},
		{"bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", ErrMalformed},
		{"lower method ok", "get / HTTP/1.1\r\nHost: h\r\n\r\n", nil},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", ErrMalformed},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", ErrMalformed},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"8-bit target", "GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", ErrMalformed},
		{"chunk size sign", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk size 0x", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk size space", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk bare LF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk data too long", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", ErrBadChunk},
		{"chunk data LF only", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", ErrBadChunk},
		{"chunk cut", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", io.ErrUnexpectedEOF},
		{"length cut", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel", io.ErrUnexpectedEOF},
		{"trailer names framing", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, body, err := readRequest(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			// What we accept, net/http's server accepts and reads alike.
			want, wantBody, err := netHTTPRequest(tt.in)
			if err != nil {
				t.Fatalf("we accept it, net/http refuses it: %v", err)
			}
			if diff := compareRequests(r, body, want, wantBody); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	for _, tt := range []struct {
		name, in, method string
		body             Body
		cl               int64
		close            bool
		err              error
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", Length, 3, false, nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", Chunked, -1, false, nil},
		{"until close", "HTTP/1.1 200 OK\r\n\r\n", "GET", UntilClose, -1, true, nil},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD", NoBody, 9, false, nil},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", "GET", NoBody, 0, false, nil},
		{"304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", NoBody, 0, false, nil},
		{"103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", NoBody, 0, false, nil},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET", NoBody, 0, false, nil},
		{"1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", Length, 1, true, nil},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", "GET", Length, 1, true, nil},
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 0, 0, false, ErrSmuggling},
		{"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", "GET", 0, 0, false, ErrMalformed},
		{"bad version", "HTTP/1.7 200 OK\r\n\r\n", "GET", 0, 0, false, ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := ParseResponse(tt.in, tt.method)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if body != tt.body || resp.ContentLength != tt.cl || resp.Close != tt.close {
				t.Errorf("body %v, length %d, close %v; want %v, %d, %v", body, resp.ContentLength, resp.Close, tt.body, tt.cl, tt.close)
			}
		})
	}
}

func TestHeadTooLarge(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n"
	rd := NewReader(strings.NewReader(in), 64)
	if _, err := rd.ReadHead(200); !errors.Is(err, ErrHeadTooLarge) {
		t.Errorf("a 330-byte head with a 200-byte limit: %v, want ErrHeadTooLarge", err)
	}
	rd = NewReader(strings.NewReader(in), 64)
	if _, err := rd.ReadHead(400); err != nil {
		t.Errorf("a 330-byte head with a 400-byte limit: %v", err)
	}
}

// netHTTPRequest is net/http's server reading of a request: ReadRequest
// plus the checks its server adds.
func netHTTPRequest(src string) (*http.Request, []byte, error) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(src)))
	if err != nil {
		return nil, nil, err
	}
	// ReadRequest has moved Host out of Header: the server's check that an
	// HTTP/1.1 request has exactly one is ours to trust; its validity
	// check is repeated on what became r.Host.
	if !httpguts.ValidHostHeader(r.Host) {
		return nil, nil, errors.New("malformed Host")
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, nil, errors.New("bad header name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, nil, errors.New("bad header value")
			}
		}
	}
	body, err := io.ReadAll(r.Body)
	return r, body, err
}

// compareRequests describes how two readings of a request differ, or "".
func compareRequests(got *http.Request, gotBody []byte, want *http.Request, wantBody []byte) string {
	type view struct {
		Method, RequestURI, Proto, Host string
		URL                             string
		Path, RawPath, RawQuery         string
		Header, Trailer                 http.Header
		ContentLength                   int64
		TransferEncoding                []string
		Close                           bool
		Body                            string
	}
	v := func(r *http.Request, body []byte) view {
		return view{r.Method, r.RequestURI, r.Proto, r.Host, r.URL.String(), r.URL.Path, r.URL.RawPath, r.URL.RawQuery,
			r.Header, r.Trailer, r.ContentLength, r.TransferEncoding, r.Close, string(body)}
	}
	g, w := v(got, gotBody), v(want, wantBody)
	if len(g.Trailer) == 0 {
		g.Trailer = nil
	}
	if len(w.Trailer) == 0 {
		w.Trailer = nil
	}
	if !reflect.DeepEqual(g, w) {
		return "ours:    " + strings.ReplaceAll(fmtView(g), "\n", " ") + "\nnet/http: " + strings.ReplaceAll(fmtView(w), "\n", " ")
	}
	return ""
}

func fmtView(v any) string { return strings.TrimSpace(strings.ReplaceAll(fmtAny(v), "\t", " ")) }
