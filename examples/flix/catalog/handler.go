package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
)

// Page sizes for GET /titles.
const (
	defaultLimit = 20
	maxLimit     = 200
)

// Limits on a new title (POST /titles).
const (
	maxBody      = 16 << 10
	maxNameLen   = 200
	maxGenres    = 5
	maxSeasons   = 100
	maxEpisodes  = 500 // per season
	maxDurationS = 24 * 3600
)

//go:embed openapi.json
var openapi []byte

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.Handler
}

type handler struct {
	c *catalog
}

func (h *handler) routes() []route {
	return []route{
		{http.MethodGet, "/titles", http.HandlerFunc(h.list)},
		{http.MethodPost, "/titles", h.c.keys.Middleware(http.HandlerFunc(h.create))},
		{http.MethodGet, "/titles/{id}", http.HandlerFunc(h.title)},
		{http.MethodGet, "/titles/{id}/episodes", http.HandlerFunc(h.episodes)},
		{http.MethodGet, "/genres", http.HandlerFunc(h.genres)},
		{http.MethodGet, "/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
}

// newHandler serves the catalog API from c.
func newHandler(c *catalog) http.Handler {
	h := &handler{c: c}
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
			fmt.Sprintf("no route for %s; try GET /titles or GET /titles/{id} (see /openapi.json)", r.URL.Path))
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapi)
}

// list answers GET /titles: a page of titles by id or newest first,
// optionally of one genre; or, with ids, those titles.
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("ids") {
		h.listIDs(w, r, q.Get("ids"))
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
	var newest bool
	switch o := q.Get("order"); o {
	case "", "id":
	case "new":
		newest = true
	default:
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("order=%q: want id or new", o))
		return
	}
	genre := q.Get("genre")
	if genre != "" && !slices.Contains(genres, genre) {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("genre=%q: want one of %s", genre, strings.Join(genres, ", ")))
		return
	}
	page, total := h.c.current(r.Context()).page(genre, newest, offset, limit)
	shoal.WriteJSON(w, http.StatusOK, map[string]any{
		"titles": page, "total": total, "limit": limit, "offset": offset,
	})
}

// listIDs answers GET /titles?ids=1,2,3: those titles, in that order,
// unknown ids left out. It lets a caller name a list of titles in one call.
func (h *handler) listIDs(w http.ResponseWriter, r *http.Request, raw string) {
	q := r.URL.Query()
	for _, p := range []string{"limit", "offset", "order", "genre"} {
		if q.Has(p) {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("ids and %s do not go together", p))
			return
		}
	}
	parts := strings.Split(raw, ",")
	if raw == "" || len(parts) > maxLimit {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("ids=%q: want 1 to %d title ids, comma-separated", raw, maxLimit))
		return
	}
	s := h.c.current(r.Context())
	out := make([]Title, 0, len(parts))
	for _, p := range parts {
		id, err := strconv.Atoi(p)
		if err != nil || id < 1 {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("ids: %q is not a title id", p))
			return
		}
		if t, ok := s.get(id); ok {
			out = append(out, t)
			continue
		}
		if id <= s.maxID {
			continue // ids are given in order: a gap below maxID is no title
		}
		t, ok, err := h.c.lookup(r.Context(), id)
		if err != nil {
			storeError(w, r, err)
			return
		}
		if ok {
			out = append(out, t)
		}
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"titles": out, "total": len(out)})
}

// titleOf reads {id} and returns its title, or answers 404 (or 503).
func (h *handler) titleOf(w http.ResponseWriter, r *http.Request) (Title, bool) {
	raw := r.PathValue("id")
	id, err := strconv.Atoi(raw)
	if err != nil || id < 1 {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no title with id %q", raw))
		return Title{}, false
	}
	t, ok, err := h.c.get(r.Context(), id)
	if err != nil {
		storeError(w, r, err)
		return Title{}, false
	}
	if !ok {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no title with id %q", raw))
		return Title{}, false
	}
	return t, true
}

func (h *handler) title(w http.ResponseWriter, r *http.Request) {
	if t, ok := h.titleOf(w, r); ok {
		shoal.WriteJSON(w, http.StatusOK, t)
	}
}

// Episode is one episode of a series.
type Episode struct {
	Season    int    `json:"season"`
	Episode   int    `json:"episode"`
	Name      string `json:"name"`
	DurationS int    `json:"duration_s"`
}

// episodes answers GET /titles/{id}/episodes: a series' episodes, season
// by season; none for a movie.
func (h *handler) episodes(w http.ResponseWriter, r *http.Request) {
	t, ok := h.titleOf(w, r)
	if !ok {
		return
	}
	eps := []Episode{}
	for s, n := range t.episodes {
		for e := range n {
			eps = append(eps, Episode{Season: s + 1, Episode: e + 1, Name: fmt.Sprintf("%s S%d E%d", t.Name, s+1, e+1), DurationS: t.DurationS})
		}
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"title": t.ID, "kind": t.Kind, "seasons": t.Seasons, "episodes": eps})
}

// Genre is one genre and how many titles have it.
type Genre struct {
	Name   string `json:"name"`
	Titles int    `json:"titles"`
}

func (h *handler) genres(w http.ResponseWriter, r *http.Request) {
	s := h.c.current(r.Context())
	out := make([]Genre, len(genres))
	for i, g := range genres {
		out[i] = Genre{Name: g, Titles: len(s.byGenre[g])}
	}
	shoal.WriteJSON(w, http.StatusOK, map[string]any{"genres": out})
}

// NewTitle is the body of POST /titles: a Title without its id, which the
// catalog assigns. Episodes (per season, series only) defaults to 10 per
// season; AddedAt to now.
type NewTitle struct {
	Name      string   `json:"name"`
	Year      int      `json:"year"`
	Genres    []string `json:"genres"`
	Kind      string   `json:"kind"`
	Seasons   int      `json:"seasons"`
	Episodes  []int    `json:"episodes"`
	Maturity  string   `json:"maturity"`
	DurationS int      `json:"duration_s"`
	AddedAt   int64    `json:"added_at"`
}

// create answers POST /titles, under the request's claim on its
// Idempotency-Key: the title, its event and the answer commit together.
func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	claim := idempotency.FromContext(r.Context())
	if claim == nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("%s header is required on POST: a unique value per write (e.g. a UUID), repeated on retries", idempotency.KeyHeader))
		return
	}
	t, err := decodeTitle(w, r)
	if err != nil {
		claim.Forget() // nothing was done: the caller may fix the body and keep its key
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	_, body, err := h.c.add(r.Context(), claim, t, encode)
	if errors.Is(err, idempotency.ErrClaimLost) {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "this write took too long and was handed over; retry with the same key")
		return
	}
	if err != nil {
		storeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	w.Write(body)
}

// encode is the JSON of v as WriteJSON writes it.
func encode(v Title) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}

// decodeTitle reads and checks a NewTitle.
func decodeTitle(w http.ResponseWriter, r *http.Request) (Title, error) {
	var in NewTitle
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Title{}, fmt.Errorf("body: want at most %d bytes", maxBody)
		}
		return Title{}, fmt.Errorf("body: want a JSON title without id (%v)", err)
	}
	if dec.More() {
		return Title{}, errors.New("body: want a single JSON object")
	}
	t := Title{Name: strings.TrimSpace(in.Name), Year: in.Year, Genres: in.Genres, Kind: in.Kind, Seasons: in.Seasons,
		Maturity: in.Maturity, DurationS: in.DurationS, AddedAt: in.AddedAt, episodes: in.Episodes}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if t.Name == "" || len(t.Name) > maxNameLen || !utf8.ValidString(t.Name) {
		bad("name %q: want 1 to %d bytes of text", in.Name, maxNameLen)
	}
	if t.Year < 1888 || t.Year > 2100 {
		bad("year %d: want 1888 to 2100", t.Year)
	}
	if len(t.Genres) == 0 || len(t.Genres) > maxGenres {
		bad("genres %q: want 1 to %d of %s", t.Genres, maxGenres, strings.Join(genres, ", "))
	}
	for i, g := range t.Genres {
		if !slices.Contains(genres, g) || slices.Contains(t.Genres[:i], g) {
			bad("genre %q: want one of %s, once", g, strings.Join(genres, ", "))
		}
	}
	switch t.Kind {
	case kindMovie:
		if t.Seasons != 0 || len(t.episodes) != 0 {
			bad("a movie has no seasons nor episodes")
		}
	case kindSeries:
		if t.Seasons < 1 || t.Seasons > maxSeasons {
			bad("seasons %d: a series has 1 to %d", t.Seasons, maxSeasons)
			break
		}
		if t.episodes == nil {
			t.episodes = slices.Repeat([]int{defaultEpisodes}, t.Seasons)
		}
		if len(t.episodes) != t.Seasons {
			bad("episodes %v: want one count per season (%d)", t.episodes, t.Seasons)
		}
		for _, n := range t.episodes {
			if n < 1 || n > maxEpisodes {
				bad("episodes %v: want 1 to %d per season", t.episodes, maxEpisodes)
				break
			}
		}
	default:
		bad("kind %q: want movie or series", t.Kind)
	}
	if !slices.Contains(maturities, t.Maturity) {
		bad("maturity %q: want all, teen or adult", t.Maturity)
	}
	if t.DurationS < 1 || t.DurationS > maxDurationS {
		bad("duration_s %d: want 1 to %d seconds (a movie's length, or an episode's)", t.DurationS, maxDurationS)
	}
	if t.AddedAt < 0 {
		bad("added_at %d: want Unix milliseconds, or nothing for now", t.AddedAt)
	}
	return t, errors.Join(errs...)
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

// storeError answers a database failure with 503 and Retry-After: they
// are passing here (a lock held too long, a database restarting), and the
// caller's client fails over or retries. Details go to the log.
func storeError(w http.ResponseWriter, r *http.Request, err error) {
	level := slog.LevelError
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		level = slog.LevelDebug // the caller left (e.g. its hedge won elsewhere)
	case r.Context().Err() != nil:
		level = slog.LevelWarn // the caller's deadline passed: slow, not broken
	}
	slog.Log(r.Context(), level, "catalog store", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Retry-After", "1")
	shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the catalog store is unavailable; retry shortly")
}
