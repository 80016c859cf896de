package main

import (
	_ "embed"
	"fmt"
	"net/http"
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

type handler struct {
	ix *index
}

// routes registers search queries, served from ix, on rt, and the
// catalog's events, taken through inbox.
func routes(rt *shoal.Router, ix *index, inbox http.Handler) {
	h := &handler{ix: ix}
	rt.OpenAPI = openapi
	rt.HandleFunc("GET /search", h.search)
	rt.Handle("POST "+events.Path, inbox)
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
	limit, ok := shoal.QueryInt(w, r, "limit", defaultLimit, 1, maxLimit)
	if !ok {
		return
	}
	results, err := h.ix.search(r.Context(), query, limit)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the search index", err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"query": query, "results": results})
}
