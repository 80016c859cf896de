package main

import (
	_ "embed"
	"net/http"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Limits of GET /history/{profile}'s and .../continue's lists.
const (
	defaultLimit = 20
	maxLimit     = 200
)

//go:embed openapi.json
var openapi []byte

// handler serves the history API.
type handler struct {
	ledger *ledger
}

// History is the answer of GET /history/{profile} and .../continue.
type History struct {
	Profile string `json:"profile"`
	Items   []Item `json:"items"`
}

// routes registers the API, served from l, on rt; inbox takes the events
// delivered to events.Path.
func routes(rt *shoal.Router, l *ledger, inbox http.Handler) {
	h := &handler{ledger: l}
	rt.OpenAPI = openapi
	rt.HandleFunc("GET /history/{profile}", func(w http.ResponseWriter, r *http.Request) { h.list(w, r, false) })
	rt.HandleFunc("GET /history/{profile}/continue", func(w http.ResponseWriter, r *http.Request) { h.list(w, r, true) })
	rt.Handle("POST "+events.Path, inbox)
}

// list answers a profile's history, or with unfinished its "continue
// watching" row: newest first, at most ?limit= items.
func (h *handler) list(w http.ResponseWriter, r *http.Request, unfinished bool) {
	id, ok := profile.FromPath(w, r, "profile")
	if !ok {
		return
	}
	limit, ok := shoal.QueryInt(w, r, "limit", defaultLimit, 1, maxLimit)
	if !ok {
		return
	}
	items, err := h.ledger.items(r.Context(), id, unfinished, limit)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the history store", err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, History{Profile: id, Items: items})
}
