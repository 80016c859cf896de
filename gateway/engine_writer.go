package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/gateway/internal/h1"
	"golang.org/x/net/http/httpguts"
)

// respBuffer is the output buffered before a write to the connection: a
// whole small response (head and body) goes out in one write.
const respBuffer = 8 << 10

// response is the engine's http.ResponseWriter (and http.Flusher). One per
// connection, reset for each request: net/http's contract forbids a
// handler to use it after ServeHTTP returns.
//
// The head is built when the status is chosen (WriteHeader, or the first
// Write), from the header map as it is then, as net/http does; its framing
// (Content-Length or chunked, Connection: close) is added when the
// response is first written out. A response that ends before its buffer
// fills gets a Content-Length, so that small answers are never chunked.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   reqBody

	code        int
	wroteHeader bool // the final status is chosen
	committed   bool // the head has been written out (framing fixed)
	noBody      bool // HEAD, 1xx, 204, 304
	chunked     bool
	declared    int64 // Content-Length the handler set; -1 if none
	written     int64 // body bytes accepted
	closeAfter  bool  // close the connection after this response
	trailers    []string

	out     []byte // head (when not committed) and buffered body
	headEnd int    // end of the head in out, before commit
	err     error  // a write to the connection failed: sticky
}

var _ http.Flusher = (*response)(nil)

// reset prepares w for the request r.
func (w *response) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header, 16)
		w.out = make([]byte, 0, respBuffer)
	} else {
		clear(w.header)
	}
	w.req = r
	w.code, w.wroteHeader, w.committed, w.noBody, w.chunked = 0, false, false, false, false
	w.declared, w.written, w.closeAfter, w.trailers = -1, 0, false, w.trailers[:0]
	w.out, w.headEnd, w.err = w.out[:0], 0, nil
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader sends an informational status at once, or chooses the final
// status and builds the head from the header map as it is now.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("gateway: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader || w.err != nil {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// 103 Early Hints and the like: the headers set so far, now.
		w.out = h1.AppendStatusLine(w.out[:0], code)
		w.out = appendHead(w.out, w.header, nil)
		w.out = append(w.out, '\r', '\n')
		w.flushOut()
		return
	}
	w.wroteHeader, w.code = true, code
	h := w.header
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent ||
		code == http.StatusNotModified || code == http.StatusSwitchingProtocols
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
	if vs := h["Trailer"]; len(vs) > 0 {
		for _, v := range vs {
			for name := range strings.SplitSeq(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
				}
			}
		}
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	w.out = h1.AppendStatusLine(w.out, code)
	w.out = appendHead(w.out, h, w.trailers)
	if h["Date"] == nil {
		w.out = append(w.out, "Date: "...)
		w.out = append(w.out, httpDate()...)
		w.out = append(w.out, '\r', '\n')
	}
	w.headEnd = len(w.out)
}

// appendHead appends h's fields but the framing ones (the engine sets
// those), trailers (sent after the body) and trailer-prefixed keys.
func appendHead(dst []byte, h http.Header, trailers []string) []byte {
	for k, vs := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || contains(trailers, k) {
			continue
		}
		dst = h1.AppendField(dst, k, vs)
	}
	return dst
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	n := len(p)
	var err error
	if w.declared >= 0 && w.written+int64(n) > w.declared {
		n, err = int(w.declared-w.written), http.ErrContentLength
		p = p[:n]
	}
	w.written += int64(n)
	if len(p) == 0 {
		return n, err
	}
	if !w.committed && len(w.out)+len(p) <= respBuffer {
		w.out = append(w.out, p...)
		return n, err
	}
	if !w.committed {
		w.commit(false)
	}
	if w.chunked {
		w.out = h1.AppendChunkHeader(w.out, len(p))
	}
	if len(w.out)+len(p) <= respBuffer {
		w.out = append(w.out, p...)
	} else {
		w.flushOut()
		if w.err == nil {
			_, w.err = w.c.nc.Write(p)
		}
	}
	if w.chunked {
		w.out = append(w.out, '\r', '\n')
	}
	if w.err != nil {
		return 0, w.err
	}
	return n, err
}

// commit adds the framing to the head: the declared length, the length of
// the whole body when the handler has ended (final) without declaring one,
// else chunked. The body buffered so far follows.
func (w *response) commit(final bool) {
	w.committed = true
	body := w.out[w.headEnd:]
	var frBuf [96]byte // framing lines: on the stack
	fr := frBuf[:0]
	switch {
	case w.noBody:
		if w.req.Method == http.MethodHead && w.declared >= 0 {
			fr = appendLength(fr, w.declared)
		}
	case w.declared >= 0:
		fr = appendLength(fr, w.declared)
	case final && len(w.trailers) == 0 && !hasPrefixedTrailer(w.header):
		fr = appendLength(fr, int64(len(body)))
	default:
		w.chunked = true
		fr = append(fr, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.closeAfter || w.req.Close || w.c.e.shutdown.Load() {
		if !httpguts.HeaderValuesContainsToken(w.header["Connection"], "close") {
			fr = append(fr, "Connection: close\r\n"...)
		}
		w.closeAfter = true
	}
	fr = append(fr, '\r', '\n')
	if w.chunked && len(body) > 0 {
		fr = h1.AppendChunkHeader(fr, len(body))
		w.out = append(w.out, '\r', '\n')
	}
	// Insert the framing between head and body.
	n := len(fr)
	w.out = append(w.out, fr...) // grow
	copy(w.out[w.headEnd+n:], w.out[w.headEnd:len(w.out)-n])
	copy(w.out[w.headEnd:], fr)
}

func appendLength(dst []byte, n int64) []byte {
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

func hasPrefixedTrailer(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// Flush sends the head and what is buffered; a response of unknown length
// is chunked from then on.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	w.flushOut()
	return w.err
}

// flushOut writes the buffer to the connection.
func (w *response) flushOut() {
	if len(w.out) == 0 || w.err != nil {
		w.out = w.out[:0]
		return
	}
	_, w.err = w.c.nc.Write(w.out)
	w.out = w.out[:0]
}

// SetWriteDeadline bounds the writes to the connection from now on, for
// http.ResponseController. As with net/http, the deadline stays on the
// connection until it is set again.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// sendContinue answers Expect: 100-continue, when the body is first read;
// false if the final response has begun (the client then decides).
func (w *response) sendContinue() bool {
	if w.wroteHeader {
		w.closeAfter = true
		return false
	}
	if w.err == nil {
		_, w.err = w.c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	}
	return w.err == nil
}

// errTruncated: the handler wrote less than the Content-Length it set.
var errTruncated = errors.New("gateway: response shorter than its Content-Length")

// finish ends the response after the handler returned: 200 if nothing was
// sent, the framing, the last chunk and trailers, and one write.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		var tr http.Header
		for k, vs := range w.header {
			switch {
			case strings.HasPrefix(k, http.TrailerPrefix):
				k = k[len(http.TrailerPrefix):]
			case !contains(w.trailers, k):
				continue
			}
			if tr == nil {
				tr = make(http.Header, 2)
			}
			tr[k] = vs
		}
		w.out = h1.AppendLastChunk(w.out, tr)
	}
	w.flushOut()
	if w.err == nil && !w.noBody && w.declared >= 0 && w.written < w.declared {
		w.closeAfter = true // the client waits for bytes that will not come
		return errTruncated
	}
	return w.err
}

// dateCache is the Date header value, formatted once a second.
var dateCache atomic.Pointer[dateValue]

type dateValue struct {
	sec  int64
	text string
}

// httpDate is the current time as an HTTP date (RFC 9110 §5.6.7).
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateValue{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}
