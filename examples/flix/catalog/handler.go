package main

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/shoal-dev/shoal"
)

// Page sizes for GET /titles.
const (
	defaultLimit = 20
	maxLimit     = 200
)

// newHandler serves the titles, which it does not modify; titles[i] has
// id i+1.
func newHandler(titles []Title) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/titles", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		limit, ok := intParam(w, r, "limit", defaultLimit, 1, maxLimit)
		if !ok {
			return
		}
		offset, ok := intParam(w, r, "offset", 0, 0, 1<<31-1)
		if !ok {
			return
		}
		page := titles[min(offset, len(titles)):min(offset+limit, len(titles))]
		shoal.WriteJSON(w, http.StatusOK, map[string]any{
			"titles": page, "total": len(titles), "limit": limit, "offset": offset,
		})
	})
	mux.HandleFunc("/titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !allowGet(w, r) {
			return
		}
		raw := r.PathValue("id")
		id, err := strconv.Atoi(raw)
		if err != nil || id < 1 || id > len(titles) {
			shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no title with id %q", raw))
			return
		}
		shoal.WriteJSON(w, http.StatusOK, titles[id-1])
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s; try GET /titles or GET /titles/{id}", r.URL.Path))
	})
	return mux
}

// intParam reads query parameter name as an integer in [lo, hi], def if
// absent. It answers 400 and reports false if the value is bad.
func intParam(w http.ResponseWriter, r *http.Request, name string, def, lo, hi int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("%s=%q: want an integer from %d to %d", name, v, lo, hi))
		return 0, false
	}
	return n, true
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use GET")
	return false
}
