package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/internal/statuswriter"
	"github.com/shoal-dev/shoal/telemetry"
)

// recorder notes what the gateway answered (its status and size, as
// statuswriter.Writer records them), for the access log and the route
// metrics.
type recorder struct {
	statuswriter.Writer
	start time.Time
	log   bool // write an access log line
}

// recorder returns the writer that records the request, or nil when
// nothing needs it.
func (g *Gateway) recorder(w http.ResponseWriter, t *table) *recorder {
	logIt := g.AccessLog || t.accessLog
	if g.Metrics == nil && !logIt && g.CohortMetrics == nil {
		return nil
	}
	return &recorder{Writer: statuswriter.Writer{ResponseWriter: w}, start: time.Now(), log: logIt}
}

// finish records the request once its handler returned, or panicked: the
// forwarder panics with http.ErrAbortHandler when a response is cut
// short, and the panic goes on to the server after the request is recorded.
func (g *Gateway) finish(rec *recorder, r *http.Request, st *request) {
	p := recover()
	d := time.Since(rec.start)
	code := rec.Status()
	switch {
	case p != nil && rec.Code == 0:
		code = http.StatusInternalServerError
	case p == nil:
		code = telemetry.Recorded(r, code) // a service's 5xx passed on to a caller gone: 499
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
			slog.Int64("bytes", rec.Bytes),
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
