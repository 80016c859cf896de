package supervisor

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal"
)

// Control API paths (HTTP/JSON on loopback; see Remote for the client).
const (
	pathPing    = "/v1/ping"
	pathPS      = "/v1/ps"
	pathScale   = "/v1/scale"
	pathRestart = "/v1/restart"
	pathKill    = "/v1/kill"
	pathLogs    = "/v1/logs"
	pathDown    = "/v1/down"
	pathChaos   = "/v1/chaos"
)

// tokenHeader carries the secret from the state file: only someone who can
// read .shoal/state.json (the user) may drive the supervisor; a web page in
// a browser, or a request routed through the gateway, cannot.
const tokenHeader = "Shoal-Control-Token"

type scaleRequest struct {
	Service   string `json:"service"`
	Instances int    `json:"instances"`
}

type restartRequest struct {
	Service string `json:"service"`
}

type killRequest struct {
	Service string `json:"service"`
	Index   int    `json:"index"` // -1: a random instance
	Signal  string `json:"signal"`
}

type pingResponse struct {
	PID int `json:"pid"`
}

func (s *Supervisor) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathPing, func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteJSON(w, http.StatusOK, pingResponse{PID: os.Getpid()})
	})
	mux.HandleFunc("GET "+pathPS, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hosts") != "all" {
			shoal.WriteJSON(w, http.StatusOK, HostsStatus{Instances: s.ps()})
			return
		}
		all, failed := s.psAll(r.Context())
		shoal.WriteJSON(w, http.StatusOK, HostsStatus{Instances: all, Unreachable: failed})
	})
	mux.HandleFunc("POST "+pathScale, func(w http.ResponseWriter, r *http.Request) {
		var req scaleRequest
		if !readJSON(w, r, &req) {
			return
		}
		reply(w, s.scale(r.Context(), req.Service, req.Instances))
	})
	mux.HandleFunc("POST "+pathRestart, func(w http.ResponseWriter, r *http.Request) {
		var req restartRequest
		if !readJSON(w, r, &req) {
			return
		}
		reply(w, s.restart(r.Context(), req.Service))
	})
	mux.HandleFunc("POST "+pathKill, func(w http.ResponseWriter, r *http.Request) {
		var req killRequest
		if !readJSON(w, r, &req) {
			return
		}
		st, err := s.kill(req.Service, req.Index, req.Signal)
		if err != nil {
			writeError(w, err)
			return
		}
		shoal.WriteJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST "+pathChaos, s.serveChaos)
	mux.HandleFunc("GET "+pathLogs, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		name := q.Get("service")
		var svc *service
		if name != "" {
			var err error
			if svc, err = s.lookup(name); err != nil {
				writeError(w, err)
				return
			}
		}
		index := -1
		if v := q.Get("index"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 || n < -1 {
				writeError(w, badRequest("index %q: want a number from 1, or -1 for all", v))
				return
			}
			index = n
		}
		follow := q.Get("follow") == "1" || q.Get("follow") == "true"
		// An instance scaled away keeps its lines, and one a scale is about
		// to add may be followed: only an index with neither an instance
		// nor lines, not followed, is a mistake.
		if svc != nil && index != -1 && !follow && !s.logs.has(name, index) {
			if err := s.checkIndex(svc, index); err != nil {
				writeError(w, err)
				return
			}
		}
		trace := q.Get("trace_id")
		if trace != "" && !validTraceID(trace) {
			writeError(w, badRequest("trace_id %q: want 32 hex digits", trace))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		_ = s.logs.follow(r.Context(), LogFilter{Service: name, Index: index, TraceID: strings.ToLower(trace)}, follow, w, func() { _ = rc.Flush() })
	})
	mux.HandleFunc("POST "+pathDown, func(w http.ResponseWriter, r *http.Request) {
		// Answer first: with nothing to drain, Run may close this server
		// before a handler that asked first got to write.
		shoal.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "stopping"})
		_ = http.NewResponseController(w).Flush()
		s.requestDown()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(tokenHeader)), []byte(s.token)) != 1 {
			writeError(w, &opError{http.StatusForbidden, "forbidden", "missing or wrong " + tokenHeader + " (read it from .shoal/state.json)"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, badRequest("request body: %v", err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// writeError answers with the status and code of an *opError, or 500.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	var oe *opError
	if errors.As(err, &oe) {
		status, code = oe.status, oe.code
	}
	shoal.WriteError(w, status, code, err.Error())
}
