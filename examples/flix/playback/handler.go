package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; requests from inside the system come without it.
const SubjectHeader = "Shoal-Subject"

// Limits on what a request may carry.
const (
	maxBody       = 1 << 10
	maxProfileLen = 64
	maxSessionLen = 64
	maxTitleID    = 1 << 40
	maxSeconds    = 100 * 24 * 3600 // no title lasts 100 days
)

//go:embed openapi.json
var openapi []byte

// playback holds the handlers' dependencies. The fields are set before the
// first request and only read afterwards.
type playback struct {
	sessions     *sessions
	client       *http.Client  // calls profiles and catalog: the SDK's Service.Client
	outbox       publisher     // publishes "progress" events
	lookupBudget time.Duration // zero means defaultLookupBudget
}

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.HandlerFunc
}

// routes are the API; writes go through the SDK's idempotency middleware:
// a write with an Idempotency-Key applies once per key.
func (p *playback) routes() []route {
	keyed := func(h http.HandlerFunc) http.HandlerFunc {
		if p.sessions == nil { // routes listed without a database (tests)
			return h
		}
		return p.sessions.keys.Middleware(h).ServeHTTP
	}
	return []route{
		{http.MethodPost, "/sessions", keyed(p.start)},
		{http.MethodGet, "/sessions/{id}", p.get},
		{http.MethodPost, "/sessions/{id}/progress", keyed(p.progress)},
		{http.MethodGet, "/openapi.json", serveOpenAPI},
	}
}

// newHandler serves the playback API.
func newHandler(p *playback) http.Handler { return newMux(p.routes()) }

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

// StartRequest is the body of POST /sessions; Profile defaults to the
// signed-in profile.
type StartRequest struct {
	Profile string `json:"profile"`
	Title   int64  `json:"title"`
}

// start answers POST /sessions: it checks that the profile may watch the
// title (asking profiles and catalog), then stores the session. Refusals
// come before any write and Forget the key, so the caller may fix the
// request and keep it.
func (p *playback) start(w http.ResponseWriter, r *http.Request) {
	claim := idempotency.FromContext(r.Context())
	var in StartRequest
	if err := decodeBody(w, r, &in); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	sub := r.Header.Get(SubjectHeader)
	switch {
	case in.Profile == "" && sub == "":
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", `profile is required: want {"profile": ..., "title": ...}`)
		return
	case in.Profile == "":
		in.Profile = sub
	case sub != "" && sub != in.Profile:
		claim.Forget()
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", in.Profile))
		return
	}
	if err := checkProfile(in.Profile); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if in.Title < 1 || in.Title > maxTitleID {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("title %d: want a positive integer id", in.Title))
		return
	}
	title, rf := access(r.Context(), p.client, budget(p.lookupBudget, defaultLookupBudget), in.Profile, in.Title)
	if rf != nil {
		claim.Forget()
		if rf.unavailable != nil {
			logFailure(r, slog.LevelWarn, "playback: looking up the profile and title", rf.unavailable)
		}
		if rf.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
		shoal.WriteError(w, rf.status, rf.code, rf.msg)
		return
	}
	body, err := p.sessions.create(r.Context(), claim, in.Profile, in.Title, max(title.DurationS, 0))
	if err != nil {
		writeStoreError(w, r, err)
		return
	}
	writeBody(w, http.StatusCreated, body)
}

// ProgressRequest is the body of POST /sessions/{id}/progress; DurationS
// defaults to the session's (at first the catalog's duration of the title).
type ProgressRequest struct {
	PositionS *float64 `json:"position_s"`
	DurationS *float64 `json:"duration_s"`
}

// progress answers POST /sessions/{id}/progress: it records the position
// and publishes a "progress" event, in one transaction with the answer's
// record under the Idempotency-Key (required): a retried report applies
// and publishes once.
func (p *playback) progress(w http.ResponseWriter, r *http.Request) {
	claim := idempotency.FromContext(r.Context())
	id := r.PathValue("id")
	if err := checkSession(id); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if claim == nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("%s header is required on POST: a unique value per report (e.g. a UUID), repeated on retries", idempotency.KeyHeader))
		return
	}
	var in ProgressRequest
	if err := decodeBody(w, r, &in); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	sess, ok, err := p.sessions.get(r.Context(), id)
	if err != nil {
		writeStoreError(w, r, err)
		return
	}
	if !ok {
		claim.Forget()
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q", id))
		return
	}
	if sub := r.Header.Get(SubjectHeader); sub != "" && sub != sess.Profile {
		claim.Forget()
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("session %q is not the signed-in profile's", id))
		return
	}
	pr, err := in.resolve(sess)
	if err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	body, err := p.sessions.progress(r.Context(), claim, p.outbox, pr)
	if errors.Is(err, idempotency.ErrClaimLost) {
		// This attempt outlived its lease and another took the key
		// over: a retry with the key gets that one's answer.
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "this report took too long and was handed over; retry with the same key")
		return
	}
	if err != nil {
		writeStoreError(w, r, err)
		return
	}
	writeBody(w, http.StatusOK, body)
}

// resolve checks the report against its session and returns what to
// record. A position past the end is taken as the end: players overshoot.
func (in ProgressRequest) resolve(sess Session) (Progress, error) {
	if in.PositionS == nil {
		return Progress{}, errors.New(`position_s is required: want {"position_s": seconds, "duration_s": seconds}`)
	}
	pos, dur := *in.PositionS, sess.DurationS
	if in.DurationS != nil {
		dur = *in.DurationS
	}
	if !(pos >= 0 && pos <= maxSeconds) { // NaN cannot come from JSON, but fails here too
		return Progress{}, fmt.Errorf("position_s %v: want seconds from 0 to %d", pos, maxSeconds)
	}
	if !(dur > 0 && dur <= maxSeconds) {
		return Progress{}, fmt.Errorf("duration_s %v: want seconds above 0 (the catalog gave none for this title: send duration_s)", dur)
	}
	return Progress{
		Profile:   sess.Profile,
		Title:     sess.Title,
		Session:   sess.ID,
		PositionS: math.Min(pos, dur),
		DurationS: dur,
		At:        time.Now().UnixMilli(),
	}, nil
}

func (p *playback) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkSession(id); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	sess, ok, err := p.sessions.get(r.Context(), id)
	switch {
	case err != nil:
		writeStoreError(w, r, err)
	case !ok:
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q", id))
	case r.Header.Get(SubjectHeader) != "" && r.Header.Get(SubjectHeader) != sess.Profile:
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("session %q is not the signed-in profile's", id))
	default:
		shoal.WriteJSON(w, http.StatusOK, sess)
	}
}

func checkProfile(p string) error {
	if !validID(p, maxProfileLen) {
		return fmt.Errorf("profile %q: want 1 to %d letters, digits, '-', '_' or '.'", p, maxProfileLen)
	}
	return nil
}

func checkSession(s string) error {
	if !validID(s, maxSessionLen) {
		return fmt.Errorf("session %q: want 1 to %d letters, digits, '-', '_' or '.'", s, maxSessionLen)
	}
	return nil
}

func validID(s string, maxLen int) bool {
	ok := len(s) >= 1 && len(s) <= maxLen
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	return ok
}

// decodeBody reads one JSON object with only known fields into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("body: want at most %d bytes", maxBody)
		}
		return fmt.Errorf("body: want a JSON object (%v)", err)
	}
	if dec.More() {
		return errors.New("body: want a single JSON object")
	}
	return nil
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// writeStoreError answers a database failure with 503 and Retry-After: in
// this system they are passing (a lock held too long, a database
// restarting), and a retry with the same key is safe. Details go to the
// log.
func writeStoreError(w http.ResponseWriter, r *http.Request, err error) {
	logFailure(r, slog.LevelError, "playback store", err)
	w.Header().Set("Retry-After", "1")
	shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the playback store is unavailable; retry shortly")
}

// logFailure logs a failure the caller sees only as a status.
func logFailure(r *http.Request, level slog.Level, msg string, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
	}
	slog.Log(r.Context(), level, msg, "method", r.Method, "path", r.URL.Path, "err", err)
}

func budget(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
