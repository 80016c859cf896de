// Package statuswriter records what a handler answered: Writer wraps an
// http.ResponseWriter and notes the status the response went out with and
// the body bytes written, for metrics, traces and access logs.
package statuswriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// Writer records the status and the size of the response written through
// it. It keeps http.Flusher, http.Hijacker and io.ReaderFrom, and unwraps
// for http.ResponseController, so streams and upgrades pass through it.
// Like any response writer it is used from the handler's goroutine.
type Writer struct {
	http.ResponseWriter
	Code  int    // the final status sent; 0 until then
	Bytes int64  // body bytes written (not counted after a hijack)
	Route string // the route template that served the request ("/titles/{id}"), set by SetRoute; "" if none did
	// Logged is set (MarkLogged) once a log line said why the request
	// failed, so that the server does not log it again.
	Logged bool
}

// SetRoute notes on the Writer that w is or wraps (through Unwrap) the
// route template that serves the request, for metrics and spans to label it
// by. It does nothing if w wraps no Writer. A router calls it before its
// handler; the template must come from the router's own patterns, never
// from the request, so that the label stays bounded.
func SetRoute(w http.ResponseWriter, route string) {
	if sw := find(w); sw != nil {
		sw.Route = route
	}
}

// MarkLogged notes on the Writer that w is or wraps that the request's
// failure has been logged (see Writer.Logged).
func MarkLogged(w http.ResponseWriter) {
	if sw := find(w); sw != nil {
		sw.Logged = true
	}
}

// find returns the Writer that w is or wraps, nil if none.
func find(w http.ResponseWriter) *Writer {
	for {
		switch t := w.(type) {
		case *Writer:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// Status returns the status sent, 200 if the handler sent nothing (what
// net/http sends for it).
func (w *Writer) Status() int {
	if w.Code == 0 {
		return http.StatusOK
	}
	return w.Code
}

// WriteHeader records code unless it is informational: 1xx responses
// other than 101 (103 Early Hints) come before the final status.
func (w *Writer) WriteHeader(code int) {
	if w.Code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.Code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write writes a piece of the body, after a 200 if no status was sent.
func (w *Writer) Write(b []byte) (int, error) {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += int64(n)
	return n, err
}

// ReadFrom keeps the underlying writer's io.ReaderFrom (sendfile).
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.Bytes += n
	return n, err
}

// Flush flushes if the underlying writer can; handlers that stream
// (server-sent events) check for http.Flusher.
func (w *Writer) Flush() {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over if the underlying writer can (HTTP/1.x,
// for an upgrade such as WebSocket, recorded as 101), else returns an error
// matching http.ErrNotSupported.
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.Code == 0 {
		w.Code = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
