package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal"
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; the gateway strips copies sent by clients. Requests from
// other services inside the system come without it.
const SubjectHeader = "Shoal-Subject"

// Limits on what a request may carry.
const (
	maxBody       = 4 << 10
	maxProfileLen = 64
	maxEmailLen   = 254
	maxPassword   = 1024
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

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.HandlerFunc
}

func (h *handler) routes() []route {
	return []route{
		{http.MethodPost, "/signin", h.signin},
		{http.MethodGet, "/profiles/{id}", h.profile},
		{http.MethodGet, "/me", h.me},
		{http.MethodGet, "/openapi.json", serveOpenAPI},
	}
}

// newHandler serves the API from dir, signing tokens with tokens.
func newHandler(dir *directory, tokens *issuer) (http.Handler, error) {
	// The decoy's result is never used: any password will do.
	decoy, err := hashPassword("decoy")
	if err != nil {
		return nil, err
	}
	h := &handler{dir: dir, tokens: tokens, decoy: decoy}
	return newMux(h.routes()), nil
}

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
	if err := decodeBody(w, r, &in); err != nil {
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
	if len(in.Email) > maxEmailLen || len(in.Password) > maxPassword || len(in.Profile) > maxProfileLen {
		// Too long to be anyone's: refused like any other mismatch, but
		// without hashing a megabyte.
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated", errSignin)
		return
	}
	email := strings.ToLower(strings.TrimSpace(in.Email))
	c, err := h.dir.credentials(r.Context(), email, in.Profile)
	if err != nil {
		storeError(w, r, err)
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
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated", errSignin)
		return
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

func (h *handler) profile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkProfileID(id); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if sub := r.Header.Get(SubjectHeader); sub != "" && sub != id {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", id))
		return
	}
	h.writeProfile(w, r, id)
}

func (h *handler) me(w http.ResponseWriter, r *http.Request) {
	sub := r.Header.Get(SubjectHeader)
	if sub == "" {
		shoal.WriteError(w, http.StatusUnauthorized, "unauthenticated", "no signed-in profile: call through the gateway with a token from POST /signin")
		return
	}
	if checkProfileID(sub) != nil {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", sub))
		return
	}
	h.writeProfile(w, r, sub)
}

func (h *handler) writeProfile(w http.ResponseWriter, r *http.Request, id string) {
	p, ok, err := h.dir.profile(r.Context(), id)
	switch {
	case err != nil:
		storeError(w, r, err)
	case !ok:
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", id))
	default:
		shoal.WriteJSON(w, http.StatusOK, p)
	}
}

func checkProfileID(p string) error {
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

// storeError answers a database failure with 503 and Retry-After: in this
// system they are passing (a lock held too long, a database restarting),
// and the caller's client fails over or retries. Details go to the log.
func storeError(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelError
	if errors.Is(r.Context().Err(), context.Canceled) {
		level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
	}
	slog.Log(r.Context(), level, "profiles store", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the profiles store is unavailable; retry shortly")
}
