package main

import (
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Limits on what a request may carry.
const (
	maxBody     = 4 << 10
	maxEmailLen = 254
	maxPassword = 1024
)

//go:embed openapi.json
var openapi []byte

// handler serves the profiles API.
type handler struct {
	dir    *directory
	tokens *issuer
	// decoy is a hash no password matches, checked when no account has
	// the email, so that an unknown email costs the same as a wrong
	// password and timing does not tell which accounts exist.
	decoy string
}

// routes registers the API, served from dir and signing tokens with
// tokens, on rt.
func routes(rt *shoal.Router, dir *directory, tokens *issuer) error {
	// The decoy's result is never used: any password will do.
	decoy, err := hashPassword("decoy")
	if err != nil {
		return err
	}
	h := &handler{dir: dir, tokens: tokens, decoy: decoy}
	rt.OpenAPI = openapi
	rt.HandleFunc("POST /signin", h.signin)
	rt.HandleFunc("GET /profiles/{id}", h.profile)
	rt.HandleFunc("GET /me", h.profile)
	return nil
}

// SigninRequest is the body of POST /signin.
type SigninRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Profile  string `json:"profile"`
}

// Signin is the answer to a successful sign-in. ExpiresAt is Unix
// milliseconds, like every time in flix.
type Signin struct {
	Token     string  `json:"token"`
	ExpiresAt int64   `json:"expires_at"`
	Profile   Profile `json:"profile"`
}

// errSignin is the one answer to every refused sign-in: whether the email,
// the password or the profile was wrong is not said.
const errSignin = "wrong email, password or profile"

func (h *handler) signin(w http.ResponseWriter, r *http.Request) {
	var in SigninRequest
	if err := shoal.ReadJSON(w, r, maxBody, &in); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"email", in.Email}, {"password", in.Password}, {"profile", in.Profile}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf(`%s required: want {"email": ..., "password": ..., "profile": ...}`, strings.Join(missing, ", ")))
		return
	}
	if len(in.Email) > maxEmailLen || len(in.Password) > maxPassword || len(in.Profile) > profile.MaxIDLen {
		// Too long to be anyone's: refused like any other mismatch, but
		// without hashing a megabyte.
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated", errSignin)
		return
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	ctx := r.Context()
	now := h.dir.now()
	bo, err := h.dir.backoff(ctx, email)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the profiles store", err)
		return
	}
	if now.Before(bo.until) {
		tooManyFailures(w, bo.until.Sub(now))
		return
	}
	c, err := h.dir.credentials(ctx, email, in.Profile)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the profiles store", err)
		return
	}
	hash := c.hash
	if hash == "" {
		hash = h.decoy
	}
	ok, err := checkPassword(hash, in.Password)
	if err != nil {
		slog.Error("profiles: checking a password", "email", email, "err", err)
		shoal.WriteError(w, http.StatusInternalServerError, "internal", "the password could not be checked")
		return
	}
	if !ok || c.hash == "" || !c.found {
		until, err := h.dir.failed(ctx, email, now)
		if err != nil {
			slog.Warn("profiles: counting a failed sign-in", "email", email, "err", err)
		}
		if now.Before(until) {
			// This failure starts a wait: say so now, not at the next try.
			tooManyFailures(w, until.Sub(now))
			return
		}
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated", errSignin)
		return
	}
	if bo.failures > 0 {
		if err := h.dir.succeeded(ctx, email); err != nil {
			slog.Warn("profiles: clearing failed sign-ins", "email", email, "err", err)
		}
	}
	token, exp, err := h.tokens.issue(c.profile.ID)
	if err != nil {
		slog.Error("profiles: signing a token", "err", err)
		shoal.WriteError(w, http.StatusInternalServerError, "internal", "the token could not be signed")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	shoal.WriteJSON(w, http.StatusOK, Signin{Token: token, ExpiresAt: exp.UnixMilli(), Profile: c.profile})
}

// tooManyFailures answers a sign-in for an account that must wait (see
// backoff.go): 429 with Retry-After in whole seconds.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	shoal.WriteError(w, http.StatusTooManyRequests, "too_many_failures",
		fmt.Sprintf("too many failed sign-ins for this email: retry in %d s", secs))
}

// profile answers GET /profiles/{id}, and GET /me for the signed-in
// profile.
func (h *handler) profile(w http.ResponseWriter, r *http.Request) {
	id, ok := profile.Of(w, r, "id")
	if !ok {
		return
	}
	p, ok, err := h.dir.profile(r.Context(), id)
	switch {
	case err != nil:
		shoal.WriteUnavailable(w, r, "the profiles store", err)
	case !ok:
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", id))
	default:
		shoal.WriteJSON(w, http.StatusOK, p)
	}
}
