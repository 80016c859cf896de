package main

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Page size of GET /recommendations/{profile}.
const (
	defaultLimit = 10
	maxLimit     = 50
)

// Default time budgets of the calls behind a recommendation, each cut
// further by the request's own deadline. Without an answer in time, a
// recommendation does without: ratings (only what was watched counts),
// what the profile may watch (then only titles rated for everyone),
// popularity (not used to rank).
const (
	defaultRatingsBudget  = 400 * time.Millisecond
	defaultProfilesBudget = 300 * time.Millisecond
)

//go:embed openapi.json
var openapi []byte

// recommender holds what the handlers need, complete before its routes are
// registered and only read afterwards.
type recommender struct {
	client         *http.Client // calls services by name
	watched        *watchedStore
	catalog        *catalogCopy
	popular        *popular
	rights         *profile.Cache // what profiles may watch
	inbox          http.Handler   // the events.Inbox, mounted at events.Path
	ratingsBudget  time.Duration  // zero means defaultRatingsBudget
	profilesBudget time.Duration  // zero means defaultProfilesBudget
	log            *slog.Logger
}

// routes registers the recommendations API on rt.
func (rc *recommender) routes(rt *shoal.Router) {
	rt.OpenAPI = openapi
	rt.HandleFunc("GET /recommendations/{profile}", rc.recommendations)
	rt.Handle("POST "+events.Path, rc.inbox)
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
	id, ok := profile.FromPath(w, r, "profile")
	if !ok {
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
	ratingsBudget := cmp.Or(rc.ratingsBudget, defaultRatingsBudget)
	ratings := client.Async(ctx, ratingsBudget, func(ctx context.Context) ([]rated, error) {
		var out struct {
			Ratings []rated `json:"ratings"`
		}
		err := client.GetJSON(ctx, rc.client, "http://ratings/ratings/"+url.PathEscape(id), maxUpstreamBody, &out)
		return out.Ratings, err
	}, failed(rc.log, "ratings", id, []rated(nil)))
	popular := rc.popular.async(ctx, ratingsBudget, failed(rc.log, "ratings top", id, []int(nil)))
	var noProfile bool
	rights := client.Async(ctx, cmp.Or(rc.profilesBudget, defaultProfilesBudget),
		func(ctx context.Context) (profile.Rights, error) { return rc.rights.Rights(ctx, id) },
		func(err error) profile.Rights {
			noProfile = errors.Is(err, profile.ErrNotFound)
			return failed(rc.log, "profiles", id, profile.Unknown)(err)
		})

	watched, err := rc.watched.latest(ctx, id)
	if err != nil && ctx.Err() == nil {
		rc.log.Warn("recommendations: reading what was watched", "profile", id, "err", err)
	}
	cat := rc.catalog.titles(ctx)
	liked, _ := ratings()
	pop, _ := popular()
	may, _ := rights()
	if noProfile { // read after rights() returned: set by its goroutine before
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", id))
		return
	}
	if len(cat.titles) == 0 {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the catalog is unavailable: no titles to recommend yet")
		return
	}

	out := Recommendations{Profile: id, Picks: recommend(cat, watched, liked, pop, may, limit)}
	if len(out.Picks) == 0 {
		seen := map[int]bool{}
		for _, id := range watched {
			seen[id] = true
		}
		for _, r := range liked {
			seen[r.Title] = true
		}
		out.Fallback = true
		if out.Picks = fallbackPicks(cat, pop, seen, may, reasonPopular, limit); len(out.Picks) == 0 {
			newest := make([]int, 0, limit*4)
			for _, i := range cat.newest[:min(len(cat.newest), cap(newest))] {
				newest = append(newest, cat.titles[i].ID)
			}
			out.Picks = fallbackPicks(cat, newest, seen, may, reasonNew, limit)
		}
	}
	shoal.WriteJSON(w, http.StatusOK, out)
}

// failed returns a fallback for client.Async that logs why a dependency
// could not help (at debug level if the caller left) and returns v.
func failed[T any](log *slog.Logger, what, id string, v T) func(error) T {
	return func(err error) T {
		level := slog.LevelWarn
		if errors.Is(err, context.Canceled) || errors.Is(err, profile.ErrNotFound) {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "recommendations: doing without "+what, "profile", id, "err", err)
		return v
	}
}
