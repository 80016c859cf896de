package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// Limits on what a request may carry.
const (
	maxProfileLen = 64
	maxBody       = 1 << 10
	maxTitleID    = 1 << 40
)

// GET /top's page size.
const (
	defaultTopLimit = 20
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; the gateway strips copies sent by clients. Requests from
// other services inside the system come without it.
const SubjectHeader = "Shoal-Subject"

//go:embed openapi.json
var openapi []byte

type handler struct {
	st *ratingsStore
}

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.Handler
}

func (h *handler) routes() []route {
	return []route{
		{http.MethodPut, "/ratings/{profile}/{title}", h.st.keys.Middleware(http.HandlerFunc(h.put))},
		{http.MethodGet, "/ratings/{profile}/{title}", http.HandlerFunc(h.get)},
		{http.MethodGet, "/ratings/{profile}", http.HandlerFunc(h.ofProfile)},
		{http.MethodGet, "/titles/{title}/average", http.HandlerFunc(h.average)},
		{http.MethodGet, "/top", http.HandlerFunc(h.top)},
		{http.MethodGet, "/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
}

// newHandler serves the ratings API from st. PUT goes through the SDK's
// idempotency middleware: a write applies once per Idempotency-Key.
func newHandler(st *ratingsStore) http.Handler {
	h := &handler{st: st}
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
			fmt.Sprintf("no route for %s; try /ratings/{profile}/{title} or /titles/{title}/average (see /openapi.json)", r.URL.Path))
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapi)
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
	score, err := decodeScore(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	body, err := h.st.put(r.Context(), claim, Rating{Profile: profile, Title: title, Score: score})
	if errors.Is(err, idempotency.ErrClaimLost) {
		// This attempt outlived its lease and another took the key over:
		// a retry with the key gets that one's answer.
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "this write took too long and was handed over; retry with the same key")
		return
	}
	if err != nil {
		storeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
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
	profile, ok := profilePath(w, r)
	if !ok {
		return
	}
	rs, err := h.st.ofProfile(r.Context(), profile)
	if err != nil {
		storeError(w, r, err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"profile": profile, "ratings": rs})
}

// top answers GET /top?limit=20: the most popular titles, best first.
func (h *handler) top(w http.ResponseWriter, r *http.Request) {
	limit := defaultTopLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTop {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("limit=%q: want an integer from 1 to %d", v, maxTop))
			return
		}
		limit = n
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
	profile, ok := profilePath(w, r)
	if !ok {
		return "", 0, false
	}
	title, err := parseTitle(r.PathValue("title"))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", 0, false
	}
	return profile, title, true
}

// profilePath validates {profile}, answering 400 if it is bad, and 403 if
// the signed-in profile (Shoal-Subject) is another one.
func profilePath(w http.ResponseWriter, r *http.Request) (string, bool) {
	profile := r.PathValue("profile")
	if err := checkProfile(profile); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", false
	}
	if sub := r.Header.Get(SubjectHeader); sub != "" && sub != profile {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", profile))
		return "", false
	}
	return profile, true
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

func parseTitle(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > maxTitleID || s[0] == '+' {
		return 0, fmt.Errorf("title %q: want a positive integer id", s)
	}
	return n, nil
}

// decodeScore reads {"score": n} with n an integer from 1 to 5.
func decodeScore(body io.Reader) (int, error) {
	var in struct {
		Score json.RawMessage `json:"score"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return 0, fmt.Errorf("body: want at most %d bytes", maxBody)
		}
		return 0, fmt.Errorf(`body: want {"score": 1..5} (%v)`, err)
	}
	if dec.More() {
		return 0, errors.New(`body: want a single JSON object {"score": 1..5}`)
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
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		// The caller left (e.g. a hedge of its call was answered first):
		// nothing to report.
		slog.Debug("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	case r.Context().Err() != nil:
		// The caller's deadline passed: slow, not broken.
		slog.Warn("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		slog.Error("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if store.Retryable(err) || r.Context().Err() != nil {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the ratings store is busy; retry shortly")
		return
	}
	shoal.WriteError(w, http.StatusInternalServerError, "internal", "the ratings store failed")
}
