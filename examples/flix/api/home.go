package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

// Time budgets of GET /home: the page answers within homeDeadline (or the
// request's own deadline, if sooner); each row's call gets rowBudget of
// it, and what is left goes to naming the titles rows list by id.
const (
	defaultHomeDeadline = time.Second
	defaultRowBudget    = 500 * time.Millisecond
)

// renderReserve is the part of the page's time left to render and send
// it once the calls are over: a tenth, at least 20 ms.
func renderReserve(left time.Duration) time.Duration { return max(left/10, 20*time.Millisecond) }

// rowSize is how many titles a row shows; the new row, filtered by the
// profile's maturity, asks for overFetch times as many. maxTop is how many
// popular titles ratings' GET /top gives at most.
const (
	rowSize   = 10
	overFetch = 3
	maxTop    = 100
)

// The rows of the home page, in the order "degraded" lists them.
const (
	rowContinue        = "continue_watching"
	rowRecommendations = "recommendations"
	rowTopRated        = "top_rated"
	rowNew             = "new"
)

// Reasons given for recommendations that are not picks for the profile
// (the recommendations service could not answer in time).
const (
	reasonPopular = "popular on flix"
	reasonNew     = "new on flix"
)

// Home is the answer of GET /home.
type Home struct {
	Profile  string   `json:"profile"`
	Rows     Rows     `json:"rows"`
	Degraded []string `json:"degraded"` // rows that fell back, or are incomplete
}

// Rows are the home page's rows of titles, never null.
type Rows struct {
	ContinueWatching []ContinueItem `json:"continue_watching"`
	Recommendations  []PickItem     `json:"recommendations"`
	TopRated         []TopItem      `json:"top_rated"`
	New              []NewItem      `json:"new"`
}

// ContinueItem is a title the profile started and did not finish.
type ContinueItem struct {
	Title     int     `json:"title"`
	Name      string  `json:"name"`
	PositionS float64 `json:"position_s"`
	DurationS float64 `json:"duration_s"`
}

// PickItem is a recommended title, and why.
type PickItem struct {
	Title  int    `json:"title"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// TopItem is a popular title.
type TopItem struct {
	Title   int     `json:"title"`
	Name    string  `json:"name"`
	Average float64 `json:"average"`
	Count   int     `json:"count"`
}

// NewItem is a title recently added.
type NewItem struct {
	Title   int    `json:"title"`
	Name    string `json:"name"`
	Year    int    `json:"year"`
	AddedAt int64  `json:"added_at"`
}

// home answers GET /home/{profile}, and GET /home for the signed-in
// profile.
func (a *api) home(w http.ResponseWriter, r *http.Request) {
	if id, ok := profile.Of(w, r, "profile"); ok {
		a.serveHome(w, r, id)
	}
}

// historyItem is an item of history's GET /history/{p}/continue.
type historyItem struct {
	Title     int     `json:"title"`
	PositionS float64 `json:"position_s"`
	DurationS float64 `json:"duration_s"`
}

// topEntry is an entry of ratings' GET /top.
type topEntry struct {
	Title   int     `json:"title"`
	Average float64 `json:"average"`
	Count   int     `json:"count"`
}

// The answers the rows are made of.
type (
	historyPage struct {
		Items []historyItem `json:"items"`
	}
	picksPage struct {
		Picks []PickItem `json:"picks"`
	}
	topPage struct {
		Titles []topEntry `json:"titles"`
	}
	titlesPage struct {
		Titles []catalogTitle `json:"titles"`
	}
)

// fetchRow starts GETting url (JSON into a T) within budget, and returns
// the function that waits for it: the answer and true, or after a failure
// (logged as row's) the zero T and false.
func fetchRow[T any](ctx context.Context, a *api, budget time.Duration, url, row, profile string) func() (T, bool) {
	wait := client.Async(ctx, budget, func(ctx context.Context) (T, error) {
		var v T
		err := client.GetJSON(ctx, a.client, url, maxUpstreamBody, &v)
		return v, err
	}, func(err error) T {
		a.noteDegraded(row, profile, err)
		var zero T
		return zero
	})
	return func() (T, bool) {
		v, degraded := wait()
		return v, !degraded
	}
}

// serveHome fetches the rows at once, each with its own budget and its
// own fallback, then names the titles the rows list by id (one catalog
// call, for those not cached), filters them by the profile's maturity and
// answers. A row that could not be fetched is empty, or for
// recommendations made of popular titles (or else the newest), and listed
// in "degraded". Only if every row failed is the answer an error.
func (a *api) serveHome(w http.ResponseWriter, r *http.Request, id string) {
	// The calls end a little before the page's deadline, so that the
	// page, whatever they did, is rendered and sent within it.
	deadline := time.Now().Add(cmp.Or(a.homeDeadline, defaultHomeDeadline))
	if d, ok := r.Context().Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline.Add(-renderReserve(time.Until(deadline))))
	defer cancel()
	rb := cmp.Or(a.rowBudget, defaultRowBudget)
	p := url.PathEscape(id)

	var rightsErr error
	rights := client.Async(ctx, rb, func(ctx context.Context) (profile.Rights, error) { return a.rights.Rights(ctx, id) },
		func(err error) profile.Rights { rightsErr = err; return profile.Unknown })
	contRow := fetchRow[historyPage](ctx, a, rb, "http://history/history/"+p+"/continue", rowContinue, id)
	recsRow := fetchRow[picksPage](ctx, a, rb, "http://recommendations/recommendations/"+p+"?limit="+strconv.Itoa(rowSize), rowRecommendations, id)
	// All that ratings ranks: a kids profile may watch few of them, and
	// the page names them once, then from its cache.
	topRow := a.top.fetch(ctx, a, rb, "http://ratings/top?limit="+strconv.Itoa(maxTop), rowTopRated, id)
	newRow := a.news.fetch(ctx, a, rb, "http://catalog/titles?order=new&limit="+strconv.Itoa(rowSize*overFetch), rowNew, id)

	may, _ := rights() // rightsErr is set before it returns
	if errors.Is(rightsErr, profile.ErrNotFound) {
		shoal.WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no profile %q", id))
		return
	}
	contPage, okCont := contRow()
	recsPage, okRecs := recsRow()
	topList, okTop := topRow()
	newPage, okNew := newRow()
	cont, picks, top, news := contPage.Items, recsPage.Picks, topList.Titles, newPage.Titles
	a.titles.add(news...)

	// Name what the rows list by id: one call for the titles not cached,
	// with what is left of the page's time.
	var ids []int
	for _, it := range cont {
		ids = append(ids, it.Title)
	}
	for _, it := range picks {
		ids = append(ids, it.Title)
	}
	for _, it := range top {
		ids = append(ids, it.Title)
	}
	named := true
	if missing := a.titles.missing(ids); len(missing) > 0 {
		_, degraded := client.Fallback(ctx, rb, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, a.fetchTitles(ctx, missing)
		}, func(err error) struct{} { a.noteDegraded("titles", id, err); return struct{}{} })
		named = !degraded
	}

	home := Home{Profile: id, Degraded: []string{}, Rows: Rows{
		ContinueWatching: []ContinueItem{}, Recommendations: []PickItem{}, TopRated: []TopItem{}, New: []NewItem{},
	}}
	degrade := func(row string) {
		if len(home.Degraded) == 0 || home.Degraded[len(home.Degraded)-1] != row {
			home.Degraded = append(home.Degraded, row)
		}
	}
	// Continue watching: what the profile started, not filtered.
	for _, it := range cont[:min(len(cont), rowSize)] {
		t, ok := a.titles.get(it.Title)
		if !ok {
			degrade(rowContinue)
		}
		home.Rows.ContinueWatching = append(home.Rows.ContinueWatching, ContinueItem{it.Title, t.Name, it.PositionS, it.DurationS})
	}
	if !okCont {
		degrade(rowContinue)
	}
	// Recommendations: the service's picks, or popular titles, or new.
	for _, it := range picks {
		// The service filtered them already; this filter only matters
		// if the two disagree on the profile's maturity.
		if t, ok := a.titles.get(it.Title); ok && !may.Allows(t.Maturity) || len(home.Rows.Recommendations) == rowSize {
			continue
		}
		home.Rows.Recommendations = append(home.Rows.Recommendations, it)
	}
	if !okRecs {
		degrade(rowRecommendations)
	}
	// Top rated, also the recommendations' fallback.
	for _, it := range top {
		t, ok := a.titles.get(it.Title)
		if !ok || !may.Allows(t.Maturity) {
			continue
		}
		if len(home.Rows.TopRated) < rowSize {
			home.Rows.TopRated = append(home.Rows.TopRated, TopItem{it.Title, t.Name, it.Average, it.Count})
		}
		if !okRecs && len(home.Rows.Recommendations) < rowSize {
			home.Rows.Recommendations = append(home.Rows.Recommendations, PickItem{it.Title, t.Name, reasonPopular})
		}
	}
	if !okTop || len(top) > 0 && !named {
		degrade(rowTopRated)
	}
	// New, and the recommendations' last resort.
	for _, t := range news {
		if !may.Allows(t.Maturity) {
			continue
		}
		if len(home.Rows.New) < rowSize {
			home.Rows.New = append(home.Rows.New, NewItem{t.ID, t.Name, t.Year, t.AddedAt})
		}
		if !okRecs && !okTop && len(home.Rows.Recommendations) < rowSize {
			home.Rows.Recommendations = append(home.Rows.Recommendations, PickItem{t.ID, t.Name, reasonNew})
		}
	}
	if !okNew {
		degrade(rowNew)
	}
	if !okCont && !okRecs && !okTop && !okNew {
		w.Header().Set("Retry-After", "1")
		shoal.WriteError(w, http.StatusServiceUnavailable, "unavailable", "no row of the home page could be fetched in time; retry shortly")
		return
	}
	shoal.WriteJSON(w, http.StatusOK, home)
}

// fetchTitles asks the catalog for ids (at most its page size per call)
// and caches what it answers.
func (a *api) fetchTitles(ctx context.Context, ids []int) error {
	const perCall = 200 // the catalog's GET /titles?ids= maximum
	for len(ids) > 0 {
		n := min(len(ids), perCall)
		parts := make([]string, n)
		for i, id := range ids[:n] {
			parts[i] = strconv.Itoa(id)
		}
		var out titlesPage
		if err := client.GetJSON(ctx, a.client, "http://catalog/titles?ids="+strings.Join(parts, ","), maxUpstreamBody, &out); err != nil {
			return err
		}
		a.titles.add(out.Titles...)
		ids = ids[n:]
	}
	return nil
}
