package gateway

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// recorder notes what the gateway answered, for the access log and the
// route metrics. It keeps http.Flusher and http.Hijacker, and unwraps for
// http.ResponseController, so streams and upgrades pass through it.
type recorder struct {
	http.ResponseWriter
	start time.Time
	code  int   // the final status sent; 0 until then
	bytes int64 // body bytes written (not counted after an upgrade)
	log   bool  // write an access log line
}

// recorder returns the writer that records the request, or nil when
// nothing needs it.
func (g *Gateway) recorder(w http.ResponseWriter, t *table) *recorder {
	logIt := g.AccessLog || t.accessLog
	if g.Metrics == nil && !logIt && g.CohortMetrics == nil {
		return nil
	}
	return &recorder{ResponseWriter: w, start: time.Now(), log: logIt}
}

// finish records the request once its handler returned, or panicked: the
// forwarder panics with http.ErrAbortHandler when a response is cut
// short, and the panic goes on to the server after the request is recorded.
func (g *Gateway) finish(rec *recorder, r *http.Request, st *request) {
	p := recover()
	d := time.Since(rec.start)
	code := rec.status()
	if p != nil && rec.code == 0 {
		code = http.StatusInternalServerError
	}
	if g.Metrics != nil {
		g.Metrics.ObserveRoute(st.label, st.service, code, d)
	}
	g.observeCohort(st, code, d)
	if rec.log {
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", truncate(r.URL.Path, 256)),
			slog.String("route", st.label),
			slog.String("service", st.service),
			slog.Int("status", code),
			slog.Int64("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("request_id", st.id),
			slog.String("subject", st.subject),
			slog.String("client_ip", st.client),
		}
		if p != nil {
			attrs = append(attrs, slog.Bool("aborted", true))
		}
		g.accessLogger().LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
	}
	if p != nil {
		panic(p)
	}
}

func (g *Gateway) accessLogger() *slog.Logger {
	if g.AccessLogger != nil {
		return g.AccessLogger
	}
	return g.logger()
}

// status returns the status sent, 200 if nothing was (what net/http sends).
func (w *recorder) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

func (w *recorder) WriteHeader(code int) {
	// 1xx responses other than 101 are informational (103 Early Hints):
	// the final status comes later.
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush flushes if the underlying writer can; the forwarder flushes
// server-sent events as they come.
func (w *recorder) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over for an upgrade (WebSocket), which the
// log then shows as 101.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
