package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/identity"
)

// homeTitles: titles 1..100, rated all, teen, adult in turn, title i
// added at i (the newest is 100).
var homeTitles = func() []catalogTitle {
	ms := []string{"all", "teen", "adult"}
	out := make([]catalogTitle, 100)
	for i := range out {
		out[i] = catalogTitle{ID: i + 1, Name: fmt.Sprintf("Title %d", i+1), Year: 2000 + i%25, Maturity: ms[i%3], AddedAt: int64(i + 1)}
	}
	return out
}()

// fakeHomeCatalog serves GET /titles?order=new&limit= and GET
// /titles?ids=, counting the latter in idsCalls.
func fakeHomeCatalog(idsCalls *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var out []catalogTitle
		switch {
		case r.URL.Path != "/titles":
			http.Error(w, "wrong path", 404)
			return
		case q.Has("ids"):
			idsCalls.Add(1)
			for _, p := range strings.Split(q.Get("ids"), ",") {
				if id, err := strconv.Atoi(p); err == nil && id >= 1 && id <= len(homeTitles) {
					out = append(out, homeTitles[id-1])
				}
			}
		case q.Get("order") == "new":
			limit, _ := strconv.Atoi(q.Get("limit"))
			for i := len(homeTitles) - 1; i >= 0 && len(out) < limit; i-- {
				out = append(out, homeTitles[i])
			}
		default:
			http.Error(w, "unexpected query "+r.URL.RawQuery, 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"titles": out, "total": len(out)})
	})
}

// fakeTop serves ratings' GET /top: titles 1..40, best first.
var fakeTop = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/top" {
		http.Error(w, "wrong path", 404)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	var list []topEntry
	for id := 1; id <= min(limit, 40); id++ {
		list = append(list, topEntry{Title: id, Average: 4.5, Count: 100 - id})
	}
	json.NewEncoder(w).Encode(map[string]any{"titles": list})
})

// fakeHistory: every profile is watching titles 50 and 51.
var fakeHistory = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/continue") {
		http.Error(w, "wrong path", 404)
		return
	}
	io.WriteString(w, `{"profile":"x","items":[{"title":51,"position_s":60,"duration_s":3600,"updated_at":2,"finished":false},
		{"title":50,"position_s":120,"duration_s":1800,"updated_at":1,"finished":false}]}`)
})

// fakeRecommendations: picks 70, 73, 76 (all "all"), because of 50.
var fakeRecommendations = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/recommendations/")
	fmt.Fprintf(w, `{"profile":%q,"picks":[{"title":70,"name":"Title 70","reason":"because you watched Title 50"},
		{"title":73,"name":"Title 73","reason":"because you watched Title 50"},
		{"title":76,"name":"Title 76","reason":"because you watched Title 50"}],"fallback":false}`, p)
})

// healthy returns fakes for every dependency of the home page.
func healthy(idsCalls *atomic.Int64) map[string]http.Handler {
	return map[string]http.Handler{
		"catalog": fakeHomeCatalog(idsCalls), "ratings": fakeTop, "history": fakeHistory,
		"recommendations": fakeRecommendations, "profiles": flixtest.Profiles,
	}
}

// Page deadline and row budget of the tests: twice the defaults (six
// times under -race), so that healthy fakes meet them even on a machine
// whose two cores run a dozen processes (TestHomeWithinIncomingDeadline
// runs with the defaults); margin is what a test allows over the deadline
// for scheduling there.
const (
	testHomeDeadline = 2 * timeScale * defaultHomeDeadline
	testRowBudget    = 2 * timeScale * defaultRowBudget
	margin           = timeScale * 500 * time.Millisecond
)

func newHomeAPI(t *testing.T, fakes map[string]http.Handler) http.Handler {
	t.Helper()
	a, h := newAPIWith(t, fakes)
	a.homeDeadline, a.rowBudget = testHomeDeadline, testRowBudget
	return h
}

type homeAnswer struct {
	Home
	Error struct{ Code, Message string }
}

// getHome GETs path from h, served as a flix service verifies users,
// signed in as the profile as ("" for the path's profile, none for /home)
// and returns the status, the answer and how long it took.
func getHome(t *testing.T, h http.Handler, path, as string) (int, homeAnswer, time.Duration) {
	t.Helper()
	srv := httptest.NewServer(flixtest.Verify(t, h))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if p, ok := strings.CutPrefix(path, "/home/"); ok && as == "" {
		as, _ = url.PathUnescape(p)
	}
	if as != "" {
		req.Header.Set(identity.UserTokenHeader, flixtest.Token(t, as))
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	var a homeAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return resp.StatusCode, a, took
}

func titlesOf[T any](items []T, id func(T) int) []int {
	out := []int{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func TestHome(t *testing.T) {
	var idsCalls atomic.Int64
	h := newHomeAPI(t, healthy(&idsCalls))
	code, a, _ := getHome(t, h, "/home/p0001", "")
	if code != 200 || a.Profile != "p0001" || len(a.Degraded) != 0 || a.Degraded == nil {
		t.Fatalf("%d %+v", code, a)
	}
	rows := a.Rows
	if want := []ContinueItem{{51, "Title 51", 60, 3600}, {50, "Title 50", 120, 1800}}; !slices.Equal(rows.ContinueWatching, want) {
		t.Errorf("continue_watching %+v, want %+v", rows.ContinueWatching, want)
	}
	if got := titlesOf(rows.Recommendations, func(p PickItem) int { return p.Title }); !slices.Equal(got, []int{70, 73, 76}) || rows.Recommendations[0].Reason != "because you watched Title 50" {
		t.Errorf("recommendations %+v", rows.Recommendations)
	}
	if got := titlesOf(rows.TopRated, func(p TopItem) int { return p.Title }); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) ||
		rows.TopRated[0] != (TopItem{1, "Title 1", 4.5, 99}) {
		t.Errorf("top_rated %+v", rows.TopRated)
	}
	if got := titlesOf(rows.New, func(p NewItem) int { return p.Title }); !slices.Equal(got, []int{100, 99, 98, 97, 96, 95, 94, 93, 92, 91}) ||
		rows.New[0] != (NewItem{100, "Title 100", 2024, 100}) {
		t.Errorf("new %+v", rows.New)
	}
	// One call named the titles; the next page needs none.
	if n := idsCalls.Load(); n != 1 {
		t.Errorf("%d catalog calls to name titles, want 1", n)
	}
	if code, _, _ := getHome(t, h, "/home/p0002", ""); code != 200 || idsCalls.Load() != 1 {
		t.Errorf("second page: %d, %d catalog calls to name titles; want none more", code, idsCalls.Load())
	}

	// A kids profile sees "all" titles only (but what it is watching).
	_, a, _ = getHome(t, h, "/home/p0010", "p0010")
	for _, id := range slices.Concat(titlesOf(a.Rows.TopRated, func(p TopItem) int { return p.Title }),
		titlesOf(a.Rows.New, func(p NewItem) int { return p.Title }),
		titlesOf(a.Rows.Recommendations, func(p PickItem) int { return p.Title })) {
		if m := homeTitles[id-1].Maturity; m != "all" {
			t.Errorf("kids profile shown title %d (%s)", id, m)
		}
	}
	if len(a.Rows.TopRated) != rowSize || len(a.Rows.New) != rowSize || len(a.Rows.ContinueWatching) != 2 {
		t.Errorf("kids profile: rows of %d, %d, %d", len(a.Rows.TopRated), len(a.Rows.New), len(a.Rows.ContinueWatching))
	}

	for _, tt := range []struct {
		path, as string
		want     int
		code     string
	}{
		{"/home", "p0003", 200, ""},
		{"/home", "", 401, "unauthenticated"},
		{"/home/p0001", "p0002", 403, "forbidden"},
		{"/home/x404", "", 404, "not_found"},
		{"/home/a%20b", "", 400, "invalid_argument"},
	} {
		code, a, _ := getHome(t, h, tt.path, tt.as)
		if code != tt.want || a.Error.Code != tt.code || tt.want == 200 && a.Profile != tt.as {
			t.Errorf("%s as %q: %d %+v", tt.path, tt.as, code, a)
		}
	}
}

// The recommendations service failing in any way costs the page nothing
// but its own row: 200 within the deadline, the row made of popular
// titles, and "degraded": ["recommendations"].
func TestHomeRecommendationsDown(t *testing.T) {
	for _, tt := range []struct {
		name string
		recs http.Handler
	}{
		{"errors", fail500},
		{"hangs", hang},
		{"refuses", refused},
		{"absent", nil},
		{"garbage", notJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var idsCalls atomic.Int64
			fakes := healthy(&idsCalls)
			fakes["recommendations"] = tt.recs
			code, a, took := getHome(t, newHomeAPI(t, fakes), "/home/p0001", "")
			if took > testHomeDeadline+margin {
				t.Errorf("took %v, deadline %v", took, testHomeDeadline)
			}
			if code != 200 || !slices.Equal(a.Degraded, []string{rowRecommendations}) {
				t.Fatalf("%d, degraded %q", code, a.Degraded)
			}
			got := titlesOf(a.Rows.Recommendations, func(p PickItem) int { return p.Title })
			if !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) || a.Rows.Recommendations[0] != (PickItem{1, "Title 1", reasonPopular}) {
				t.Errorf("recommendations %+v; want the popular titles", a.Rows.Recommendations)
			}
			if len(a.Rows.TopRated) != rowSize || len(a.Rows.New) != rowSize || len(a.Rows.ContinueWatching) != 2 {
				t.Errorf("other rows: %+v", a.Rows)
			}
		})
	}
}

// Each row degrades on its own; the page fails only when every row did.
func TestHomeRowsDegrade(t *testing.T) {
	for _, tt := range []struct {
		name         string
		down         []string
		hang         bool // also with the dependencies hanging, not only failing
		wantStatus   int
		wantDegraded []string
		check        func(t *testing.T, rows Rows)
	}{
		{"history", []string{"history"}, false, 200, []string{rowContinue}, func(t *testing.T, rows Rows) {
			if len(rows.ContinueWatching) != 0 || len(rows.Recommendations) != 3 {
				t.Errorf("rows %+v", rows)
			}
		}},
		{"ratings", []string{"ratings"}, false, 200, []string{rowTopRated}, func(t *testing.T, rows Rows) {
			if len(rows.TopRated) != 0 || len(rows.Recommendations) != 3 || len(rows.New) != rowSize {
				t.Errorf("rows %+v", rows)
			}
		}},
		{"recommendations and ratings", []string{"recommendations", "ratings"}, true, 200, []string{rowRecommendations, rowTopRated}, func(t *testing.T, rows Rows) {
			if got := titlesOf(rows.Recommendations, func(p PickItem) int { return p.Title }); len(got) != rowSize || got[0] != 100 || rows.Recommendations[0].Reason != reasonNew {
				t.Errorf("recommendations %+v; want the newest titles", rows.Recommendations)
			}
		}},
		{"profiles", []string{"profiles"}, false, 200, []string{}, func(t *testing.T, rows Rows) {
			// Not knowing the profile's maturity, only "all" titles.
			for _, it := range rows.New {
				if homeTitles[it.Title-1].Maturity != "all" {
					t.Errorf("shown %d (%s) without the profile's maturity", it.Title, homeTitles[it.Title-1].Maturity)
				}
			}
		}},
		{"catalog", []string{"catalog"}, true, 200, []string{rowContinue, rowTopRated, rowNew}, func(t *testing.T, rows Rows) {
			// Unnamed, titles by id: those of recommendations come named.
			if len(rows.New) != 0 || len(rows.Recommendations) != 3 || len(rows.ContinueWatching) != 2 || rows.ContinueWatching[0].Name != "" {
				t.Errorf("rows %+v", rows)
			}
		}},
		{"everything", []string{"catalog", "ratings", "history", "recommendations", "profiles"}, true, 503, nil, nil},
	} {
		for _, how := range []struct {
			name string
			h    http.Handler
		}{{"errors", fail500}, {"hangs", hang}} {
			if how.name == "hangs" && !tt.hang {
				continue // the same path as an error, only slower
			}
			t.Run(tt.name+" "+how.name, func(t *testing.T) {
				var idsCalls atomic.Int64
				fakes := healthy(&idsCalls)
				for _, s := range tt.down {
					fakes[s] = how.h
				}
				code, a, took := getHome(t, newHomeAPI(t, fakes), "/home/p0001", "")
				if took > testHomeDeadline+margin {
					t.Errorf("took %v, deadline %v", took, testHomeDeadline)
				}
				if code != tt.wantStatus {
					t.Fatalf("status %d, want %d: %+v", code, tt.wantStatus, a)
				}
				if code != 200 {
					if a.Error.Code != "unavailable" {
						t.Errorf("error %+v", a.Error)
					}
					return
				}
				if !slices.Equal(a.Degraded, tt.wantDegraded) {
					t.Errorf("degraded %q, want %q", a.Degraded, tt.wantDegraded)
				}
				tt.check(t, a.Rows)
			})
		}
	}
}

// A caller with less time than the page's deadline (or a row's budget)
// gets the page within its own.
func TestHomeWithinIncomingDeadline(t *testing.T) {
	var idsCalls atomic.Int64
	fakes := healthy(&idsCalls)
	fakes["recommendations"] = hang
	_, api := newAPIWith(t, fakes) // default deadline and budgets
	h := flixtest.Verify(t, api)
	signed := func(id string) *http.Request {
		r := httptest.NewRequest("GET", "/home/"+id, nil)
		r.Header.Set(identity.UserTokenHeader, flixtest.Token(t, id))
		return r
	}
	// Connections and caches warm, then less time than the row budget.
	h.ServeHTTP(httptest.NewRecorder(), signed("p0002"))
	req := signed("p0001")
	const left = 150 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), left)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if took := time.Since(start); took >= left+slack {
		t.Errorf("answered after %v with %v left: too late for the caller", took, left)
	}
	// With so little time, on a loaded machine, other rows may miss it
	// too (503 if all do); recommendations always does.
	var page Home
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != 200 && rec.Code != 503 ||
		rec.Code == 200 && !slices.Contains(page.Degraded, rowRecommendations) {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	_, h := newAPIWith(t, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.json", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
}

// The top rated and new rows are the same for every profile: a page
// reuses the copy an earlier page fetched, even while ratings fails; a row
// that did not come is not kept.
func TestHomeSharedRows(t *testing.T) {
	var idsCalls, topCalls, newCalls atomic.Int64
	var ratingsDown atomic.Bool
	fakes := healthy(&idsCalls)
	fakes["ratings"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topCalls.Add(1)
		if ratingsDown.Load() {
			fail500.ServeHTTP(w, r)
			return
		}
		fakeTop.ServeHTTP(w, r)
	})
	catalog := fakes["catalog"]
	fakes["catalog"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("order") == "new" {
			newCalls.Add(1)
		}
		catalog.ServeHTTP(w, r)
	})
	a, h := newAPIWith(t, fakes)
	a.homeDeadline, a.rowBudget, a.sharedFor = testHomeDeadline, testRowBudget, time.Hour

	page := func(profile string, wantDegraded []string) homeAnswer {
		t.Helper()
		code, ans, _ := getHome(t, h, "/home/"+profile, "")
		if code != 200 || !slices.Equal(ans.Degraded, wantDegraded) {
			t.Fatalf("%s: status %d, degraded %q; want 200, %q", profile, code, ans.Degraded, wantDegraded)
		}
		return ans
	}
	ratingsDown.Store(true)
	page("p0001", []string{rowTopRated})
	ratingsDown.Store(false)
	first := page("p0002", []string{})
	ratingsDown.Store(true)
	again := page("p0001", []string{})
	if len(first.Rows.TopRated) == 0 || !slices.Equal(again.Rows.TopRated, first.Rows.TopRated) || !slices.Equal(again.Rows.New, first.Rows.New) {
		t.Errorf("shared rows changed: top %v then %v, new %v then %v", first.Rows.TopRated, again.Rows.TopRated, first.Rows.New, again.Rows.New)
	}
	if n := topCalls.Load(); n != 2 {
		t.Errorf("ratings' top asked %d times, want 2 (a failure is not kept, a success is)", n)
	}
	if n := newCalls.Load(); n != 1 {
		t.Errorf("catalog's new titles asked %d times, want 1", n)
	}
}
