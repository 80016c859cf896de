package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/identity"
)

// catalogTitle is a title as the catalog serves it.
type catalogTitle struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Genres   []string `json:"genres"`
	Maturity string   `json:"maturity"`
	AddedAt  int64    `json:"added_at"`
}

// testTitles: 450 titles (three catalog pages), genres and maturity in
// cycles, title i added at i (so the newest is the highest id).
func testTitles() []catalogTitle {
	gs := []string{"drama", "comedy", "horror", "western", "family"}
	ms := []string{"all", "teen", "adult"}
	out := make([]catalogTitle, 450)
	for i := range out {
		id := i + 1
		out[i] = catalogTitle{ID: id, Name: fmt.Sprintf("Title %d", id), Genres: []string{gs[i%len(gs)]}, Maturity: ms[i%len(ms)], AddedAt: int64(id)}
	}
	return out
}

// fakeCatalog serves GET /titles?order=id&limit=&offset= over titles.
func fakeCatalog(titles []catalogTitle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		offset, _ := strconv.Atoi(q.Get("offset"))
		if r.URL.Path != "/titles" || q.Get("order") != "id" || limit < 1 || limit > 200 {
			http.Error(w, "bad request "+r.URL.String(), 400)
			return
		}
		page := titles[min(offset, len(titles)):min(offset+limit, len(titles))]
		json.NewEncoder(w).Encode(map[string]any{"titles": page, "total": len(titles)})
	})
}

// fakeRatings serves GET /ratings/{p} from ratings and GET /top from top.
func fakeRatings(ratings map[string][]rated, top []int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ratings/{p}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"profile": r.PathValue("p"), "ratings": ratings[r.PathValue("p")]})
	})
	mux.HandleFunc("GET /top", func(w http.ResponseWriter, r *http.Request) {
		var list []map[string]any
		for _, id := range top {
			list = append(list, map[string]any{"title": id, "average": 4.5, "count": 100})
		}
		json.NewEncoder(w).Encode(map[string]any{"titles": list})
	})
	return mux
}

var (
	fail500 = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"internal","message":"boom"}}`, 500)
	})
	hang = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
)

// newClient returns a client that reaches the fakes by service name
// through the SDK's transport, as svc.Client() does; a service without a
// fake has no instance.
func newClient(t testing.TB, fakes map[string]http.Handler) *http.Client {
	t.Helper()
	return flixtest.Client(t, client.Config{}, fakes)
}

// newService returns a recommendations instance over a new database,
// calling the given fakes.
func newService(t testing.TB, fakes map[string]http.Handler) (*recommender, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	c := newClient(t, fakes)
	rc := &recommender{
		client:         c,
		catalog:        &catalogCopy{client: c, log: log, refreshEvery: time.Minute},
		popular:        &popular{client: c, ttl: time.Minute},
		rights:         &profile.Cache{Client: c, TTL: time.Minute},
		ratingsBudget:  200 * time.Millisecond,
		profilesBudget: 200 * time.Millisecond,
		log:            log,
	}
	flixtest.Setup(t, func(ctx context.Context) (err error) {
		rc.watched, rc.inbox, err = openWatched(ctx, flixtest.SQLite(t, "recommendations"))
		return err
	})
	srv := flixtest.Serve(t, rc.routes)
	return rc, srv
}

var eventSeq atomic.Int64

// progress delivers a "progress" event as playback's outbox does.
func deliverProgress(t *testing.T, url string, p progress.Report) {
	t.Helper()
	if code := flixtest.MustDeliver(t, url, progress.Topic, fmt.Sprint("ev-", eventSeq.Add(1)), p); code != 204 {
		t.Fatalf("delivering %+v: %d", p, code)
	}
}

type answer struct {
	Profile  string
	Picks    []Pick
	Fallback bool
	Error    struct{ Code, Message string }
}

// recommendations GETs the profile id's recommendations, signed in as
// the profile as ("" for id itself, "none" for no one).
func recommendations(t *testing.T, url, id, as string) (int, answer) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/recommendations/"+id, nil)
	switch as {
	case "none":
	case "":
		req.Header.Set(identity.UserTokenHeader, flixtest.Token(t, id))
	default:
		req.Header.Set(identity.UserTokenHeader, flixtest.Token(t, as))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return resp.StatusCode, a
}

func TestRecommendations(t *testing.T) {
	titles := testTitles()
	ratings := map[string][]rated{
		"p0001": {{Title: 2, Score: 5}, {Title: 3, Score: 1}}, // likes a comedy; rated a horror low
	}
	top := []int{450, 449, 448, 447, 446, 445, 444, 443, 442, 441, 440, 439}
	_, srv := newService(t, map[string]http.Handler{
		"catalog": fakeCatalog(titles), "ratings": fakeRatings(ratings, top), "profiles": flixtest.Profiles,
	})

	// Watching title 1 (a drama) makes it the first seed, at once.
	now := time.Now().UnixMilli()
	deliverProgress(t, srv.URL, progress.Report{Profile: "p0001", Title: 1, Session: "s1", PositionS: 600, DurationS: 3600, At: now})
	code, a := recommendations(t, srv.URL, "p0001", "p0001")
	if code != 200 || a.Profile != "p0001" || a.Fallback || len(a.Picks) != defaultLimit {
		t.Fatalf("%d %+v", code, a)
	}
	if a.Picks[0].Reason != "because you watched Title 1" {
		t.Errorf("first pick %+v; want one because of title 1", a.Picks[0])
	}
	liked := 0
	for _, p := range a.Picks {
		if p.Title == 1 || p.Title == 2 || p.Title == 3 {
			t.Errorf("picked %d, which p0001 watched or rated", p.Title)
		}
		if p.Reason == "because you liked Title 2" {
			liked++
		}
		if p.Name != fmt.Sprintf("Title %d", p.Title) {
			t.Errorf("pick %+v: wrong name", p)
		}
	}
	if liked == 0 || strings.Contains(fmt.Sprint(a.Picks), "because you liked Title 3") {
		t.Errorf("picks %+v: want some because of title 2 (rated 5), none because of 3 (rated 1)", a.Picks)
	}

	// A later progress on title 5 (a family title) leads; an older event
	// for title 1 changes nothing.
	deliverProgress(t, srv.URL, progress.Report{Profile: "p0001", Title: 5, At: now + 1000})
	deliverProgress(t, srv.URL, progress.Report{Profile: "p0001", Title: 1, At: now - 1000})
	_, a = recommendations(t, srv.URL, "p0001", "")
	if a.Picks[0].Reason != "because you watched Title 5" || a.Picks[3].Reason != "because you watched Title 1" {
		t.Errorf("picks %+v; want title 5's first, then title 1's", a.Picks)
	}

	// A kids profile (p0010) is offered "all" titles only.
	deliverProgress(t, srv.URL, progress.Report{Profile: "p0010", Title: 4, At: now})
	_, a = recommendations(t, srv.URL, "p0010", "")
	for _, p := range a.Picks {
		if titles[p.Title-1].Maturity != "all" {
			t.Errorf("kids profile offered %+v (%s)", p, titles[p.Title-1].Maturity)
		}
	}
	if len(a.Picks) == 0 || a.Fallback {
		t.Errorf("kids profile: %+v", a)
	}

	// Nothing to go on: popular titles, marked.
	_, a = recommendations(t, srv.URL, "p0002", "")
	if !a.Fallback || len(a.Picks) != defaultLimit || a.Picks[0].Title != 450 || a.Picks[0].Reason != reasonPopular {
		t.Errorf("new profile: %+v", a)
	}

	for _, tt := range []struct {
		profile, subject string
		want             int
		code             string
	}{
		{"p0001", "p0002", 403, "forbidden"},
		{"p0001", "none", 401, "unauthenticated"},
		{"x404", "", 404, "not_found"},
		{"a%20b", "", 400, "invalid_argument"},
		{"p0001?limit=51", "p0001", 400, "invalid_argument"},
	} {
		if code, a := recommendations(t, srv.URL, tt.profile, tt.subject); code != tt.want || a.Error.Code != tt.code {
			t.Errorf("%s as %q: %d %+v", tt.profile, tt.subject, code, a.Error)
		}
	}
}

// Dependencies failing: ratings (its ratings and the popular titles) and
// profiles. What was watched still gives picks; with nothing watched, the
// newest titles, marked as a fallback; without the catalog, 503.
func TestDependenciesFail(t *testing.T) {
	titles := testTitles()
	for _, tt := range []struct {
		name              string
		ratings, profiles http.Handler
	}{
		{"errors", fail500, fail500},
		{"hang", hang, hang},
		{"absent", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fakes := map[string]http.Handler{"catalog": fakeCatalog(titles)}
			if tt.ratings != nil {
				fakes["ratings"], fakes["profiles"] = tt.ratings, tt.profiles
			}
			_, srv := newService(t, fakes)
			deliverProgress(t, srv.URL, progress.Report{Profile: "p0001", Title: 1, At: 1})
			start := time.Now()
			code, a := recommendations(t, srv.URL, "p0001", "")
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v: the budgets should bound it", took)
			}
			if code != 200 || a.Fallback || len(a.Picks) == 0 || a.Picks[0].Reason != "because you watched Title 1" {
				t.Errorf("with what was watched: %d %+v", code, a)
			}
			for _, p := range a.Picks { // unknown maturity: kids
				if titles[p.Title-1].Maturity != "all" {
					t.Errorf("offered %+v (%s) without knowing the profile's maturity", p, titles[p.Title-1].Maturity)
				}
			}
			code, a = recommendations(t, srv.URL, "p0002", "")
			if code != 200 || !a.Fallback || len(a.Picks) == 0 || a.Picks[0].Reason != reasonNew || a.Picks[0].Title != 448 {
				t.Errorf("with nothing watched: %d %+v; want the newest title for everyone (448)", code, a)
			}
		})
	}
	t.Run("no catalog", func(t *testing.T) {
		_, srv := newService(t, map[string]http.Handler{"ratings": fakeRatings(nil, []int{1}), "profiles": flixtest.Profiles})
		if code, a := recommendations(t, srv.URL, "p0001", ""); code != 503 || a.Error.Code != "unavailable" {
			t.Errorf("%d %+v", code, a)
		}
	})
}

// The copy of the catalog loads in pages, then takes only what was added.
func TestCatalogCopy(t *testing.T) {
	titles := testTitles()
	var calls atomic.Int64
	var served atomic.Pointer[[]catalogTitle]
	served.Store(&titles)
	c := newClient(t, map[string]http.Handler{"catalog": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fakeCatalog(*served.Load()).ServeHTTP(w, r)
	})})
	cc := &catalogCopy{client: c, log: slog.New(slog.DiscardHandler), refreshEvery: time.Minute}
	s := cc.titles(context.Background())
	if len(s.titles) != 450 || calls.Load() != 3 {
		t.Fatalf("%d titles in %d calls, want 450 in 3", len(s.titles), calls.Load())
	}
	more := append(titles, catalogTitle{ID: 451, Name: "New", Genres: []string{"opera"}, Maturity: "all", AddedAt: 1e12})
	served.Store(&more)
	if err := cc.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = cc.titles(context.Background())
	if t451, ok := s.get(451); !ok || len(s.titles) != 451 || calls.Load() != 4 || s.titles[s.newest[0]].ID != 451 || t451.Genres == 0 {
		t.Errorf("after an addition: %d titles, %d calls, newest %d", len(s.titles), calls.Load(), s.titles[s.newest[0]].ID)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	_, srv := newService(t, nil)
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, b)
	}
}

// FuzzProgressPayload: whatever a "progress" delivery carries,
// recommendations consumes it (or refuses what is not JSON), and keeps
// serving.
func FuzzProgressPayload(f *testing.F) {
	_, srv := newService(f, map[string]http.Handler{
		"catalog": fakeCatalog(testTitles()), "ratings": fakeRatings(nil, nil), "profiles": flixtest.Profiles,
	})
	flixtest.FuzzInbox(f, srv.URL, progress.Topic, []string{
		`{"profile":"p0001","title":1,"session":"s1","position_s":600,"duration_s":3600,"at":1}`,
		`{"profile":"p0001","title":5}`,
		`{"profile":"p0001","title":-1}`,
		`{"profile":"../p","title":1}`,
		`{"profile":"p0001","title":9223372036854775807,"position_s":1e308,"at":-9223372036854775808}`,
		`null`, `[]`, `{}`, `1`, `{`,
	}, func(t *testing.T) {
		if code, a := recommendations(t, srv.URL, "p0001", ""); code != 200 {
			t.Fatalf("recommendations after the delivery: %d %+v", code, a.Error)
		}
	})
}
