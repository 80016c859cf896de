package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/events"
)

// SubjectHeader carries the profile id the gateway verified in the
// caller's token; the gateway strips copies sent by clients. Requests from
// other services inside the system come without it.
const SubjectHeader = "Shoal-Subject"

// Page size of GET /recommendations/{profile}.
const (
	defaultLimit = 10
	maxLimit     = 50
)

const maxProfileLen = 64

// Default time budgets of the calls behind a recommendation, each cut
// further by the request's own deadline. Without an answer in time, a
// recommendation does without: ratings (only what was watched counts),
// the profile's maturity (taken as kids), popularity (not used to rank).
const (
	defaultRatingsBudget  = 400 * time.Millisecond
	defaultProfilesBudget = 300 * time.Millisecond
)

//go:embed openapi.json
var openapi []byte

// recommender holds what the handlers need. Its fields are set before the
// first request and only read afterwards.
type recommender struct {
	client         *http.Client // calls services by name
	watched        *watchedStore
	catalog        *catalogCopy
	popular        *popular
	maturities     *maturities
	inbox          http.Handler  // the events.Inbox, mounted at events.Path
	ratingsBudget  time.Duration // zero means defaultRatingsBudget
	profilesBudget time.Duration // zero means defaultProfilesBudget
	log            *slog.Logger
}

// route is one method and path pattern the service serves.
type route struct {
	method, pattern string
	serve           http.Handler
}

func (rc *recommender) routes() []route {
	return []route{
		{http.MethodGet, "/recommendations/{profile}", http.HandlerFunc(rc.recommendations)},
		{http.MethodPost, events.Path, rc.inbox},
		{http.MethodGet, "/openapi.json", http.HandlerFunc(serveOpenAPI)},
	}
}

// newHandler serves the recommendations API.
func newHandler(rc *recommender) http.Handler { return newMux(rc.routes()) }

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
			fmt.Sprintf("no route for %s; try GET /recommendations/{profile} (see /openapi.json)", r.URL.Path))
	})
	return mux
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openapi)
}

// Recommendations is the answer of GET /recommendations/{profile}.
type Recommendations struct {
	Profile  string `json:"profile"`
	Picks    []Pick `json:"picks"`
	Fallback bool   `json:"fallback"` // popular (or new) titles, not picks for this profile
}

// recommendations answers GET /recommendations/{profile}?limit=10. The
// profile's ratings, its maturity and the popular titles are fetched at
// once, each within its budget; what it watched is in the service's own
// database, and the titles in its copy of the catalog.
func (rc *recommender) recommendations(w http.ResponseWriter, r *http.Request) {
	profile := r.PathValue("profile")
	if err := checkProfile(profile); err != nil {
		shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	if sub := r.Header.Get(SubjectHeader); sub != "" && sub != profile {
		shoal.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("profile %q is not the signed-in profile", profile))
		return
	}
	limit := defaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			shoal.WriteError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("limit=%q: want an integer from 1 to %d", v, maxLimit))
			return
		}
		limit = n
	}
	ctx := r.Context()
	ratingsBudget := budget(rc.ratingsBudget, defaultRatingsBudget)
	ratings := client.Async(ctx, ratingsBudget, func(ctx context.Context) ([]rated, error) {
		var out struct {
			Ratings []rated `json:"ratings"`
		}
		err := client.GetJSON(ctx, rc.client, "http://ratings/ratings/"+url.PathEscape(profile), maxUpstreamBody, &out)
		return out.Ratings, err
	}, failed(rc.log, "ratings", profile, []rated(nil)))
	popular := client.Async(ctx, ratingsBudget, rc.popular.titles, failed(rc.log, "ratings top", profile, []int(nil)))
	var noProfile bool
	maturity := client.Async(ctx, budget(rc.profilesBudget, defaultProfilesBudget),
		func(ctx context.Context) (string, error) { return rc.maturities.of(ctx, profile) },
		func(err error) string {
			noProfile = errors.Is(err, errNoProfile)
			return failed(rc.log, "profiles", profile, "")(err) // "": treated as kids
		})

	watched, err := rc.watched.latest(ctx, profile)
	if err != nil && ctx.Err() == nil {
		rc.log.Warn("recommendations: reading what was watched", "profile", profile, "err", err)
	}
	cat := rc.catalog.titles(ctx)
	liked, _ := ratings()
	pop, _ := popular()
	mat, _ := maturity()
	if noProfile { // read after maturity() returned: set by its goroutine before
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", profile))
		return
	}
	if len(cat.titles) == 0 {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the catalog is unavailable: no titles to recommend yet")
		return
	}

	out := Recommendations{Profile: profile, Picks: recommend(cat, watched, liked, pop, mat, limit)}
	if len(out.Picks) == 0 {
		seen := map[int]bool{}
		for _, id := range watched {
			seen[id] = true
		}
		for _, r := range liked {
			seen[r.Title] = true
		}
		out.Fallback = true
		if out.Picks = fallbackPicks(cat, pop, seen, mat, reasonPopular, limit); len(out.Picks) == 0 {
			newest := make([]int, 0, limit*4)
			for _, i := range cat.newest[:min(len(cat.newest), cap(newest))] {
				newest = append(newest, cat.titles[i].ID)
			}
			out.Picks = fallbackPicks(cat, newest, seen, mat, reasonNew, limit)
		}
	}
	shoal.WriteJSON(w, http.StatusOK, out)
}

// failed returns a fallback for client.Async that logs why a dependency
// could not help (at debug level if the caller left) and returns v.
func failed[T any](log *slog.Logger, what, profile string, v T) func(error) T {
	return func(err error) T {
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) || errors.Is(err, errNoProfile) {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "recommendations: doing without "+what, "profile", profile, "err", err)
		return v
	}
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

func budget(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
