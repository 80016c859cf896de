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

// GET /search's page size.
const (
	defaultLimit = 10
	maxLimit     = 50
)

//go:embed openapi.json
var openapi []byte

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.Handler
}

type handler struct {
	ix    *index
	inbox http.Handler // the events.Inbox, mounted at events.Path
}

func (h *handler) routes() []route {
	return []route{
		{http.MethodGet, "/search", http.HandlerFunc(h.search)},
		{http.MethodPost, events.Path, h.inbox},
		{http.MethodGet, "/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
}

// newHandler serves search queries from ix, and takes the catalog's events
// through inbox.
func newHandler(ix *index, inbox http.Handler) http.Handler {
	h := &handler{ix: ix, inbox: inbox}
	return newMux(h.routes())
}

// newMux routes by method and pattern, answering JSON errors for unknown
// paths (404) and methods (405, with Allow).
func newMux(routes []route) *http.ServeMux {
	mux := http.NewServeMux()
	allow := map[string][]string{}
	var patterns []string
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.pattern, rt.serve)
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
			fmt.Sprintf("no route for %s; try GET /search?q= (see /openapi.json)", r.URL.Path))
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapi)
}

// search answers GET /search?q=&limit=10.
func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := strings.TrimSpace(q.Get("q"))
	if query == "" || len(query) > maxQueryLen {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("q=%q: want 1 to %d bytes of words to look for in titles' names, genres and years", q.Get("q"), maxQueryLen))
		return
	}
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("limit=%q: want an integer from 1 to %d", v, maxLimit))
			return
		}
		limit = n
	}
	results, err := h.ix.search(r.Context(), query, limit)
	if err != nil {
		level := slog.LevelError
		switch {
		case errors.Is(r.Context().Err(), context.Canceled):
			level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
		case r.Context().Err() != nil:
			level = slog.LevelWarn // the caller's deadline passed: slow, not broken
		}
		slog.Log(r.Context(), level, "search index", "query", query, "err", err)
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the search index is unavailable; retry shortly")
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"query": query, "results": results})
}
