package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
)

// Limits on what a request may carry.
const (
	maxProfileLen = 64
	maxBody       = 1 << 10
	maxTitleID    = 1 << 40
)

type handler struct {
	st *store
}

// newHandler serves the ratings API from st. PUT goes through the SDK's
// idempotency middleware: a write applies once per Idempotency-Key.
func newHandler(st *store) http.Handler {
	h := &handler{st: st}
	put := st.keys.Middleware(http.HandlerFunc(h.put))
	mux := http.NewServeMux()
	mux.HandleFunc("/ratings/{profile}/{title}", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			put.ServeHTTP(w, r)
		case http.MethodGet, http.MethodHead:
			h.get(w, r)
		default:
			methodNotAllowed(w, r, "GET, HEAD, PUT")
		}
	})
	mux.HandleFunc("/titles/{title}/average", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, r, "GET, HEAD")
			return
		}
		h.average(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		shoal.WriteError(w, http.StatusNotFound, "not_found",
			fmt.Sprintf("no route for %s; try /ratings/{profile}/{title} or /titles/{title}/average", r.URL.Path))
	})
	return mux
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

// ratingPath validates {profile} and {title}, answering 400 if either is bad.
func ratingPath(w http.ResponseWriter, r *http.Request) (string, int64, bool) {
	profile := r.PathValue("profile")
	if err := checkProfile(profile); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", 0, false
	}
	title, err := parseTitle(r.PathValue("title"))
	if err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return "", 0, false
	}
	return profile, title, true
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
	if errors.Is(r.Context().Err(), context.Canceled) {
		// The caller left (e.g. a hedge of its call was answered first):
		// nothing to report.
		slog.Debug("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		slog.Error("ratings store", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if isBusy(err) || r.Context().Err() != nil {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the ratings store is busy; retry shortly")
		return
	}
	shoal.WriteError(w, http.StatusInternalServerError, "internal", "the ratings store failed")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	shoal.WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed here; use %s", r.Method, allow))
}
