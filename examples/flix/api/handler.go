package main

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Default time budgets of the calls behind GET /titles/{id}; each is cut
// further by the incoming request's own deadline.
const (
	defaultCatalogBudget = 2 * time.Second
	defaultRatingsBudget = 300 * time.Millisecond
)

// maxUpstreamBody bounds what the api reads from a dependency.
const maxUpstreamBody = 1 << 20

// api holds the dependencies of the handlers, complete before its routes
// are registered and only read afterwards.
type api struct {
	client        *http.Client  // calls services by name: the SDK's Service.Client
	catalogBudget time.Duration // zero means defaultCatalogBudget
	ratingsBudget time.Duration // zero means defaultRatingsBudget
	homeDeadline  time.Duration // zero means defaultHomeDeadline
	rowBudget     time.Duration // zero means defaultRowBudget
	sharedFor     time.Duration // zero means defaultSharedFor
	titles        titleCache
	top           sharedRow[topPage]    // ratings' top rated, for every profile
	news          sharedRow[titlesPage] // the newest titles, for every profile
	rights        *profile.Cache        // what profiles may watch
	log           *slog.Logger          // nil means slog.Default()

	degraded     atomic.Int64 // degraded answers since the last log line
	lastDegraded atomic.Int64 // unix nanos of that line
}

//go:embed openapi.json
var openapi []byte

// routes registers the API on rt.
func (a *api) routes(rt *shoal.Router) {
	rt.OpenAPI = openapi
	rt.HandleFunc("GET /titles/{id}", a.title)
	rt.HandleFunc("GET /home/{profile}", a.home)
	rt.HandleFunc("GET /home", a.home)
}

// rating is the part of the ratings service's answer the api shows.
type rating struct {
	Average *float64 `json:"average"`
	Count   int      `json:"count"`
}

// title answers GET /titles/{id}: catalog and ratings are called at once;
// the answer waits for the catalog, and for ratings at most ratingsBudget.
func (a *api) title(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	n, err := strconv.ParseUint(raw, 10, 63)
	if err != nil || n == 0 {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no title with id %q", raw))
		return
	}
	id := strconv.FormatUint(n, 10) // canonical: nothing else reaches the URLs below

	// Both calls use the request's context, so its deadline (from the
	// caller's Shoal-Timeout-Ms) bounds them, and each budget is cut from it.
	// Ratings are optional: without them in time, the answer says so.
	rating := client.Async(r.Context(), cmp.Or(a.ratingsBudget, defaultRatingsBudget),
		func(ctx context.Context) (*rating, error) {
			var rt rating
			return &rt, client.GetJSON(ctx, a.client, "http://ratings/titles/"+id+"/average", maxUpstreamBody, &rt)
		},
		func(err error) *rating {
			a.noteDegraded("ratings", "title "+id, err)
			return nil
		})

	cctx, cancelCatalog := context.WithTimeout(r.Context(), cmp.Or(a.catalogBudget, defaultCatalogBudget))
	defer cancelCatalog()
	title, status, msg := a.fetchTitle(cctx, id)
	if title == nil {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		shoal.WriteError(w, status, errorCode(status), msg)
		return
	}
	if rt, degraded := rating(); !degraded {
		title["rating"], _ = json.Marshal(rt)
	} else {
		title["degraded"] = json.RawMessage(`["ratings"]`)
	}
	shoal.WriteJSON(w, http.StatusOK, title)
}

// fetchTitle gets the title from the catalog, as raw JSON fields so that
// the api passes on whatever the catalog says a title is. On failure it
// returns nil and the status and message to answer with.
func (a *api) fetchTitle(ctx context.Context, id string) (map[string]json.RawMessage, int, string) {
	resp, err := a.get(ctx, "http://catalog/titles/"+id)
	if err != nil {
		status, what := classify(err)
		if errors.Is(err, context.Canceled) {
			// Our own caller left (e.g. its hedge was answered first by
			// another api instance): nothing failed.
			a.logger().Debug("catalog call canceled", "title", id, "err", err)
		} else {
			a.logger().Warn("catalog call failed", "title", id, "err", err)
		}
		return nil, status, "the catalog " + what
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, http.StatusNotFound, fmt.Sprintf("no title with id %q", id)
	default:
		a.logger().Warn("catalog answered an error", "title", id, "status", resp.StatusCode)
		return nil, http.StatusBadGateway, fmt.Sprintf("the catalog failed (status %d)", resp.StatusCode)
	}
	var title map[string]json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUpstreamBody)).Decode(&title); err != nil || title == nil {
		a.logger().Warn("catalog answer unreadable", "title", id, "err", err)
		return nil, http.StatusBadGateway, "the catalog's answer could not be read"
	}
	return title, 0, ""
}

func (a *api) get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return a.client.Do(req)
}

// noteDegraded logs answers given without what (a dependency, or a row
// of the home page) for the request about whom: at debug level each, and
// at most one warning a second with the count since the last one, since
// while a dependency is down that is every request.
func (a *api) noteDegraded(what, whom string, err error) {
	a.logger().Debug("answering without "+what, "for", whom, "err", err)
	if errors.Is(err, context.Canceled) {
		return // the caller left: nothing failed
	}
	n := a.degraded.Add(1)
	now := time.Now().UnixNano()
	last := a.lastDegraded.Load()
	if now-last < int64(time.Second) || !a.lastDegraded.CompareAndSwap(last, now) {
		return
	}
	a.degraded.Add(-n)
	a.logger().Warn("answering degraded", "without", what, "for", whom, "err", err, "degraded_answers", n)
}

func (a *api) logger() *slog.Logger {
	if a.log != nil {
		return a.log
	}
	return slog.Default()
}

// classify maps a failed call to the status to answer and what happened.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, client.ErrNoInstances):
		return http.StatusServiceUnavailable, "is unavailable (no instance)"
	case errors.Is(err, client.ErrBudgetExhausted):
		return http.StatusServiceUnavailable, "is failing"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, client.ErrAttemptTimeout):
		return http.StatusGatewayTimeout, "did not answer in time"
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "call was canceled"
	}
	return http.StatusBadGateway, "could not be reached"
}

func errorCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	}
	return "bad_gateway"
}
