package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// Limits on what a request may carry.
const (
	maxBody    = 1 << 10
	maxTitleID = 1 << 40
)

// GET /top's page size.
const (
	defaultTopLimit = 20
)

//go:embed openapi.json
var openapi []byte

type handler struct {
	st *ratingsStore
}

// routes registers the ratings API, served from st, on rt. PUT goes through
// the SDK's idempotency middleware: a write applies once per
// Idempotency-Key.
func (st *ratingsStore) routes(rt *shoal.Router) {
	h := &handler{st: st}
	rt.OpenAPI = openapi
	rt.Handle("PUT /ratings/{profile}/{title}", st.keys.Middleware(http.HandlerFunc(h.put)))
	rt.HandleFunc("GET /ratings/{profile}/{title}", h.get)
	rt.HandleFunc("GET /ratings/{profile}", h.ofProfile)
	rt.HandleFunc("GET /titles/{title}/average", h.average)
	rt.HandleFunc("GET /top", h.top)
}

// put runs under the request's claim on its key (the middleware checked
// the key, and answers retries). Answers given before writing anything
// Forget the key, so that a caller may fix its request and keep its key.
func (h *handler) put(w http.ResponseWriter, r *http.Request) {
	claim := idempotency.FromContext(r.Context())
	profile, title, ok := ratingPath(w, r)
	if !ok {
		claim.Forget()
		return
	}
	if claim == nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("%s header is required on PUT: a unique value per write (e.g. a UUID), repeated on retries", idempotency.KeyHeader))
		return
	}
	score, err := decodeScore(w, r)
	if err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	body, err := h.st.put(r.Context(), claim, Rating{Profile: profile, Title: title, Score: score})
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, json.RawMessage(body))
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	profile, title, ok := ratingPath(w, r)
	if !ok {
		return
	}
	rating, found, err := h.st.get(r.Context(), profile, title)
	switch {
	case err != nil:
		storeError(w, r, err)
	case !found:
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("profile %q has not rated title %d", profile, title))
	default:
		shoal.WriteJSON(w, http.StatusOK, rating)
	}
}

func (h *handler) average(w http.ResponseWriter, r *http.Request) {
	title, err := parseTitle(r.PathValue("title"))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	avg, err := h.st.average(r.Context(), title)
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, avg)
}

// ofProfile answers GET /ratings/{profile}: the profile's ratings, the
// latest first.
func (h *handler) ofProfile(w http.ResponseWriter, r *http.Request) {
	id, ok := profile.FromPath(w, r, "profile")
	if !ok {
		return
	}
	rs, err := h.st.ofProfile(r.Context(), id)
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"profile": id, "ratings": rs})
}

// top answers GET /top?limit=20: the most popular titles, best first.
func (h *handler) top(w http.ResponseWriter, r *http.Request) {
	limit, ok := shoal.QueryInt(w, r, "limit", defaultTopLimit, 1, maxTop)
	if !ok {
		return
	}
	list, err := h.st.top(r.Context())
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"titles": list[:min(limit, len(list))]})
}

// ratingPath validates {profile} and {title}, answering 400 if either is
// bad, and 403 if the signed-in profile is another one.
func ratingPath(w http.ResponseWriter, r *http.Request) (string, int64, bool) {
	id, ok := profile.FromPath(w, r, "profile")
	if !ok {
		return "", 0, false
	}
	title, err := parseTitle(r.PathValue("title"))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", 0, false
	}
	return id, title, true
}

func parseTitle(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > maxTitleID || s[0] == '+' {
		return 0, fmt.Errorf("title %q: want a positive integer id", s)
	}
	return n, nil
}

// decodeScore reads {"score": n} with n an integer from 1 to 5.
func decodeScore(w http.ResponseWriter, r *http.Request) (int, error) {
	var in struct {
		Score json.RawMessage `json:"score"`
	}
	if err := shoal.ReadJSON(w, r, maxBody, &in); err != nil {
		return 0, fmt.Errorf(`%w: {"score": 1..5}`, err)
	}
	raw := bytes.TrimSpace(in.Score)
	if len(raw) == 0 {
		return 0, errors.New(`score is required: want {"score": 1..5}`)
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < 1 || n > 5 {
		return 0, fmt.Errorf("score %s: want an integer from 1 to 5", raw)
	}
	return n, nil
}

// storeError answers a database failure: 503 (retry, with the same key) if
// the database stayed locked or the request ran out of time, else 500. The
// details go to the log, not to the caller.
func storeError(w http.ResponseWriter, r *http.Request, err error) {
	if store.Retryable(err) || r.Context().Err() != nil || errors.Is(err, idempotency.ErrClaimLost) {
		shoal.WriteUnavailable(w, r, "the ratings store", err)
		return
	}
	slog.Error("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	shoal.WriteError(w, http.StatusInternalServerError, "internal", "the ratings store failed")
}
