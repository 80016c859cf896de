package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/idempotency"
)

// Limits on what a request may carry.
const (
	maxBody       = 1 << 10
	maxSessionLen = 64
	maxTitleID    = 1 << 40
	maxSeconds    = 100 * 24 * 3600 // no title lasts 100 days
)

//go:embed openapi.json
var openapi []byte

// playback holds the handlers' dependencies, complete before its routes
// are registered and only read afterwards.
type playback struct {
	sessions     *sessions
	client       *http.Client  // calls profiles and catalog: the SDK's Service.Client
	outbox       publisher     // publishes "progress" events
	lookupBudget time.Duration // zero means defaultLookupBudget
}

// routes registers the API on rt. Writes go through the SDK's idempotency
// middleware: a write with an Idempotency-Key applies once per key.
func (p *playback) routes(rt *shoal.Router) {
	keyed := func(h http.HandlerFunc) http.Handler { return p.sessions.keys.Middleware(h) }
	rt.OpenAPI = openapi
	rt.Handle("POST /sessions", keyed(p.start))
	rt.HandleFunc("GET /sessions/{id}", p.get)
	rt.Handle("POST /sessions/{id}/progress", keyed(p.progress))
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
	if err := shoal.ReadJSON(w, r, maxBody, &in); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if in.Profile == "" {
		in.Profile, _ = profile.Signed(r)
	}
	if _, ok := shoal.RequireSelf(w, r, in.Profile, profile.SignIn); !ok {
		claim.Forget()
		return
	}
	if err := profile.CheckID(in.Profile); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if in.Title < 1 || in.Title > maxTitleID {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("title %d: want a positive integer id", in.Title))
		return
	}
	title, rf := access(r.Context(), p.client, cmp.Or(p.lookupBudget, defaultLookupBudget), in.Profile, in.Title)
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
		shoal.WriteUnavailable(w, r, "the playback store", err)
		return
	}
	shoal.WriteJSON(w, http.StatusCreated, json.RawMessage(body))
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
	if _, ok := shoal.RequireUser(w, r, profile.SignIn); !ok {
		claim.Forget()
		return
	}
	if claim == nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("%s header is required on POST: a unique value per report (e.g. a UUID), repeated on retries", idempotency.KeyHeader))
		return
	}
	var in ProgressRequest
	if err := shoal.ReadJSON(w, r, maxBody, &in); err != nil {
		claim.Forget()
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	sess, ok, err := p.sessions.get(r.Context(), id)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the playback store", err)
		return
	}
	if !ok {
		claim.Forget()
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q", id))
		return
	}
	if !profile.Permits(r, sess.Profile) {
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
	if err != nil {
		shoal.WriteUnavailable(w, r, "the playback store", err)
		return
	}
	shoal.WriteJSON(w, http.StatusOK, json.RawMessage(body))
}

// resolve checks the report against its session and returns what to
// record. A position past the end is taken as the end: players overshoot.
func (in ProgressRequest) resolve(sess Session) (progress.Report, error) {
	if in.PositionS == nil {
		return progress.Report{}, errors.New(`position_s is required: want {"position_s": seconds, "duration_s": seconds}`)
	}
	pos, dur := *in.PositionS, sess.DurationS
	if in.DurationS != nil {
		dur = *in.DurationS
	}
	if !(pos >= 0 && pos <= maxSeconds) { // NaN cannot come from JSON, but fails here too
		return progress.Report{}, fmt.Errorf("position_s %v: want seconds from 0 to %d", pos, maxSeconds)
	}
	if !(dur > 0 && dur <= maxSeconds) {
		return progress.Report{}, fmt.Errorf("duration_s %v: want seconds above 0 (the catalog gave none for this title: send duration_s)", dur)
	}
	return progress.Report{
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
	if _, ok := shoal.RequireUser(w, r, profile.SignIn); !ok {
		// Before the lookup: whether a session exists is the signed-in
		// profile's business.
		return
	}
	sess, ok, err := p.sessions.get(r.Context(), id)
	switch {
	case err != nil:
		shoal.WriteUnavailable(w, r, "the playback store", err)
	case !ok:
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no session %q", id))
	case !profile.Permits(r, sess.Profile):
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("session %q is not the signed-in profile's", id))
	default:
		shoal.WriteJSON(w, http.StatusOK, sess)
	}
}

func checkSession(s string) error {
	if !profile.ValidID(s, maxSessionLen) {
		return fmt.Errorf("session %q: want 1 to %d letters, digits, '-', '_' or '.'", s, maxSessionLen)
	}
	return nil
}

// logFailure logs a failure the caller sees only as a status.
func logFailure(r *http.Request, level slog.Level, msg string, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
	}
	slog.Log(r.Context(), level, msg, "method", r.Method, "path", r.URL.Path, "err", err)
}
