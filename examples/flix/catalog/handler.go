package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
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

type handler struct {
	c *catalog
}

// routes registers the catalog API, served from c, on rt.
func (c *catalog) routes(rt *shoal.Router) {
	h := &handler{c: c}
	rt.OpenAPI = openapi
	rt.HandleFunc("GET /titles", h.list)
	rt.Handle("POST /titles", c.keys.Middleware(http.HandlerFunc(h.create)))
	rt.HandleFunc("GET /titles/{id}", h.title)
	rt.HandleFunc("GET /titles/{id}/episodes", h.episodes)
	rt.HandleFunc("GET /genres", h.genres)
}

// list answers GET /titles: a page of titles by id or newest first,
// optionally of one genre; or, with ids, those titles.
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("ids") {
		h.listIDs(w, r, q.Get("ids"))
		return
	}
	limit, ok := shoal.QueryInt(w, r, "limit", defaultLimit, 1, maxLimit)
	if !ok {
		return
	}
	offset, ok := shoal.QueryInt(w, r, "offset", 0, 0, 1<<31-1)
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
			shoal.WriteUnavailable(w, r, "the catalog store", err)
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
		shoal.WriteUnavailable(w, r, "the catalog store", err)
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
	_, body, err := h.c.add(r.Context(), claim, t)
	if err != nil {
		shoal.WriteUnavailable(w, r, "the catalog store", err)
		return
	}
	shoal.WriteJSON(w, http.StatusCreated, json.RawMessage(body))
}

// decodeTitle reads and checks a NewTitle.
func decodeTitle(w http.ResponseWriter, r *http.Request) (Title, error) {
	var in NewTitle
	if err := shoal.ReadJSON(w, r, maxBody, &in); err != nil {
		return Title{}, fmt.Errorf("%w: a title without id", err)
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
