package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/supervisor"
)

//go:embed ui
var assets embed.FS

// Source is what the dashboard shows. A *supervisor.Supervisor implements
// it. Every method may be called from any goroutine, often (each open
// page streams updates), and must not block: it copies state already in
// memory.
type Source interface {
	Overview() supervisor.Overview
	Traces(list string, limit int) []supervisor.TraceSummary
	Trace(id string) (supervisor.Trace, bool)
	TraceLogs(traceID string) []supervisor.LogLine
	Events(after uint64, limit int) []supervisor.Event
	// Changed returns a channel closed at the next change.
	Changed() <-chan struct{}
}

// Controller is what the dashboard's buttons do. A *supervisor.Supervisor
// implements it. Scale and Restart block until the change is done or ctx
// ends (the request's context: the change goes on without the page);
// their errors carry an HTTP status (see supervisor.HTTPStatus).
type Controller interface {
	Signal(service string, index int, signal string) (supervisor.InstanceStatus, error)
	Scale(ctx context.Context, service string, instances int) error
	Restart(ctx context.Context, service string) error
}

// System is a Source that can be controlled.
type System interface {
	Source
	Controller
}

// Server is the dashboard's HTTP handler: the page, its JSON API and the
// live stream. Create it with New.
type Server struct {
	sys   System
	token string
	mux   *http.ServeMux
	// pushEvery is the shortest time between two updates on a stream.
	pushEvery time.Duration
}

// Limits of what one answer carries.
const (
	eventsShown = 200 // events in an overview
	tracesShown = 100 // traces per list
)

// New returns the dashboard of sys; every request must carry token (see
// guard.go). It does no I/O and starts no goroutines.
func New(sys System, token string) *Server {
	s := &Server{sys: sys, token: token, mux: http.NewServeMux(), pushEvery: time.Second}
	ui, _ := fs.Sub(assets, "ui")
	static := http.FileServerFS(ui)
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.Handle("GET /ui/", http.StripPrefix("/ui/", static))
	s.mux.HandleFunc("GET /api/overview", s.overview)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("GET /api/traces", s.traces)
	s.mux.HandleFunc("GET /api/traces/{id}", s.trace)
	s.mux.HandleFunc("GET /api/traces/{id}/logs", s.traceLogs)
	s.mux.HandleFunc("GET /api/stream", s.stream)
	s.mux.HandleFunc("POST /api/instances/{service}/{index}/signal", s.signal)
	s.mux.HandleFunc("POST /api/services/{service}/scale", s.scale)
	s.mux.HandleFunc("POST /api/services/{service}/restart", s.restart)
	return s
}

// ServeHTTP checks the request (see guard.go) and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	why, via := s.refusal(r)
	if why != "" {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", why)
		return
	}
	if via == "query" {
		s.setCookie(w, r)
	}
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// page serves the single page; opened with the token, it sets the cookie
// and sends the browser to the same page without the token in the URL.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has(tokenParam) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.ServeFileFS(w, r, assets, "ui/index.html")
}

// OverviewResponse is the answer of GET /api/overview: the system and the
// latest events.
type OverviewResponse struct {
	supervisor.Overview
	Events []supervisor.Event `json:"events"`
}

func (s *Server) overviewNow() OverviewResponse {
	return OverviewResponse{Overview: s.sys.Overview(), Events: nonNil(s.sys.Events(0, eventsShown))}
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	shoal.WriteJSON(w, http.StatusOK, s.overviewNow())
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil && r.URL.Query().Get("after") != "" {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "after: want the seq of the last event seen")
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"events": nonNil(s.sys.Events(after, 0))})
}

// TracesResponse is the answer of GET /api/traces.
type TracesResponse struct {
	Recent  []supervisor.TraceSummary `json:"recent"`
	Slowest []supervisor.TraceSummary `json:"slowest"`
	Failed  []supervisor.TraceSummary `json:"failed"`
}

func (s *Server) tracesNow(limit int) TracesResponse {
	return TracesResponse{
		Recent:  nonNil(s.sys.Traces(supervisor.TracesRecent, limit)),
		Slowest: nonNil(s.sys.Traces(supervisor.TracesSlowest, limit)),
		Failed:  nonNil(s.sys.Traces(supervisor.TracesFailed, limit)),
	}
}

func (s *Server) traces(w http.ResponseWriter, r *http.Request) {
	limit := tracesShown
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			shoal.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q: want a number from 1", v))
			return
		}
		limit = n
	}
	shoal.WriteJSON(w, http.StatusOK, s.tracesNow(limit))
}

func (s *Server) trace(w http.ResponseWriter, r *http.Request) {
	t, ok := s.sys.Trace(r.PathValue("id"))
	if !ok {
		shoal.WriteError(w, http.StatusNotFound, "unknown_trace", "no trace "+r.PathValue("id")+" is kept (the supervisor keeps the recent, slowest and failed ones)")
		return
	}
	shoal.WriteJSON(w, http.StatusOK, t)
}

func (s *Server) traceLogs(w http.ResponseWriter, r *http.Request) {
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"lines": nonNil(s.sys.TraceLogs(r.PathValue("id")))})
}

type signalRequest struct {
	Signal string `json:"signal"`
}

// scaleRequest is the body of a scale. Instances is required: a body
// without it (or the page's empty field, sent as null) must not scale the
// service to 0.
type scaleRequest struct {
	Instances *int `json:"instances"`
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	var req signalRequest
	if !readJSON(w, r, &req) {
		return
	}
	index, err := strconv.Atoi(r.PathValue("index"))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("index %q: want a number from 1", r.PathValue("index")))
		return
	}
	st, err := s.sys.Signal(r.PathValue("service"), index, req.Signal)
	if err != nil {
		controlError(w, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	var req scaleRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Instances == nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", `request body: want {"instances": N}, the number of instances to run`)
		return
	}
	if err := s.sys.Scale(r.Context(), r.PathValue("service"), *req.Instances); err != nil {
		controlError(w, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	if !readJSON(w, r, &struct{}{}) {
		return
	}
	if err := s.sys.Restart(r.Context(), r.PathValue("service")); err != nil {
		controlError(w, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readJSON decodes a JSON body; anything else is refused, which also keeps
// cross-site forms out (see guard.go).
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Header.Get("Content-Type") != "application/json" {
		shoal.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "bad_request", "request body: "+err.Error())
		return false
	}
	return true
}

func controlError(w http.ResponseWriter, err error) {
	status, code := supervisor.HTTPStatus(err)
	if errors.Is(err, context.Canceled) {
		status, code = 499, "canceled"
	}
	shoal.WriteError(w, status, code, err.Error())
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
