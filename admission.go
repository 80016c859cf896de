package shoal

import (
	"bufio"
	"mime"
	"net"
	"net/http"

	"github.com/shoal-dev/shoal/resilience"
)

// streamStart is the response writer of a request that asks for a stream
// (Accept: text/event-stream, or an Upgrade). Asking is not streaming: any
// client can send those headers, and a handler that answers as usual must
// hold its admission permit like any other request, or the headers would be
// a way around the concurrency limit. So the permit is held until the
// response really becomes a stream: a 101 Switching Protocols or a
// text/event-stream response goes out, the handler flushes (a stream's
// first event), or it hijacks the connection. Then the permit is dropped: a
// stream lasts as long as its client likes, which says nothing about load,
// and a few hundred open ones would fill the limit.
//
// Its methods are called from the handler's goroutine, like any response
// writer's, and so is the deferred end of the permit.
type streamStart struct {
	http.ResponseWriter
	permit resilience.Permit
	sent   bool // the header went out: what it said is settled
}

// serveStream serves a request that asks for a stream, with its permit p
// (moved here: the caller no longer ends it) held until the response
// streams, or ended as any request's when the handler returns first.
func (s *Service) serveStream(w http.ResponseWriter, r *http.Request, p resilience.Permit) {
	sw := &streamStart{ResponseWriter: w, permit: p}
	defer endPermit(r.Context(), &sw.permit) // does nothing once dropped
	s.handler.ServeHTTP(sw, r)
}

// streaming drops the permit once the response is a stream.
func (w *streamStart) streaming() { w.permit.Drop() }

// header is called as the response header goes out, with its status.
func (w *streamStart) header(code int) {
	if w.sent {
		return
	}
	w.sent = true
	mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if code == http.StatusSwitchingProtocols || mt == "text/event-stream" {
		w.streaming()
	}
}

func (w *streamStart) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.header(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *streamStart) Write(b []byte) (int, error) {
	w.header(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// FlushError flushes, and makes the response a stream: a handler flushes a
// response its client asked to stream when it sends the first event.
func (w *streamStart) FlushError() error {
	w.header(http.StatusOK)
	w.streaming()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for handlers that check for http.Flusher.
func (w *streamStart) Flush() { _ = w.FlushError() }

// Hijack takes the connection over (a WebSocket after its handshake): the
// request is a stream from now on.
func (w *streamStart) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.streaming()
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *streamStart) Unwrap() http.ResponseWriter { return w.ResponseWriter }
