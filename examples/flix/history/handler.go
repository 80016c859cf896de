package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; requests from inside the system come without it.
const SubjectHeader = "Shoal-Subject"

// Limits of GET /history/{profile}'s and .../continue's lists.
const (
	defaultLimit  = 20
	maxLimit      = 200
	maxProfileLen = 64
)

//go:embed openapi.json
var openapi []byte

// handler serves the history API and takes "progress" events.
type handler struct {
	ledger *ledger
	inbox  http.Handler
}

// History is the answer of GET /history/{profile} and .../continue.
type History struct {
	Profile string `json:"profile"`
	Items   []Item `json:"items"`
}

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.HandlerFunc
}

func (h *handler) routes() []route {
	return []route{
		{http.MethodGet, "/history/{profile}", func(w http.ResponseWriter, r *http.Request) { h.list(w, r, false) }},
		{http.MethodGet, "/history/{profile}/continue", func(w http.ResponseWriter, r *http.Request) { h.list(w, r, true) }},
		{http.MethodPost, events.Path, h.inbox.ServeHTTP},
		{http.MethodGet, "/openapi.json", serveOpenAPI},
	}
}

// newHandler serves the API from l; inbox takes the events delivered to
// events.Path.
func newHandler(l *ledger, inbox http.Handler) http.Handler {
	h := &handler{ledger: l, inbox: inbox}
	return newMux(h.routes())
}

// newMux routes by method and pattern, answering JSON errors for unknown
// paths (404) and methods (405, with Allow).
func newMux(routes []route) *http.ServeMux {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	var patterns []string
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.pattern, rt.serve)
		if allow[rt.pattern] == nil {
			patterns = append(patterns, rt.pattern)
		}
		allow[rt.pattern] = append(allow[rt.pattern], rt.method)
		if rt.method == http.MethodGet {
			allow[rt.pattern] = append(allow[rt.pattern], http.MethodHead)
		}
	}
	for _, p := range patterns {
		methods := strings.Join(allow[p], ", ")
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, methods))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no route for %s; see /openapi.json", r.URL.Path))
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapi)
}

// list answers a profile's history, or with unfinished its "continue
// watching" row: newest first, at most ?limit= items.
func (h *handler) list(w http.ResponseWriter, r *http.Request, unfinished bool) {
	profile := r.PathValue("profile")
	if err := checkProfile(profile); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if sub := r.Header.Get(SubjectHeader); sub != "" && sub != profile {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", profile))
		return
	}
	limit := defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("limit %q: want an integer from 1 to %d", v, maxLimit))
			return
		}
		limit = n
	}
	items, err := h.ledger.items(r.Context(), profile, unfinished, limit)
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, History{Profile: profile, Items: items})
}

func checkProfile(p string) error {
	ok := len(p) >= 1 && len(p) <= maxProfileLen
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("profile %q: want 1 to %d letters, digits, '-', '_' or '.'", p, maxProfileLen)
	}
	return nil
}

// storeError answers a database failure with 503 and Retry-After: in this
// system they are passing (a lock held too long, a database restarting),
// and the caller's client fails over or retries. Details go to the log.
func storeError(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelError
	if errors.Is(r.Context().Err(), context.Canceled) {
		level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
	}
	slog.Log(r.Context(), level, "history store", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the history store is unavailable; retry shortly")
}
