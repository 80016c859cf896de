package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// openCatalog opens (creating if needed) the catalog database at path as
// an instance does at start: migrations, the dataset's first n titles,
// first snapshot.
func openCatalog(t testing.TB, path string, n int) (*catalog, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, generated, err := openCatalogErr(ctx, path, n)
	if err != nil {
		t.Fatal(err)
	}
	return c, generated
}

func openCatalogErr(ctx context.Context, path string, n int) (*catalog, bool, error) {
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return nil, false, err
	}
	log := slog.New(slog.DiscardHandler)
	keys, err := idempotency.New(db, idempotency.Config{Logger: log})
	if err != nil {
		return nil, false, err
	}
	c := &catalog{
		db:           db,
		keys:         keys,
		log:          log,
		refreshEvery: defaultRefresh,
		// Not run: the tests read what it would deliver from its table.
		outbox: events.NewOutbox(db, events.OutboxConfig{Subscribers: map[string][]string{topicTitles: {"search"}}, Logger: log}),
	}
	generated, err := c.open(ctx, generate(datasetSeed, n))
	if err != nil {
		db.Close()
		return nil, false, err
	}
	return c, generated, nil
}

// newTestServer serves a new catalog of the dataset's first n titles.
func newTestServer(t *testing.T, n int) (*catalog, *httptest.Server) {
	t.Helper()
	c, _ := openCatalog(t, filepath.Join(t.TempDir(), "catalog.db"), n)
	t.Cleanup(func() { c.db.Close() })
	return c, flixtest.Serve(t, c.routes)
}

type page struct {
	Titles               []Title
	Total, Limit, Offset int
}

func TestHandler(t *testing.T) {
	_, srv := newTestServer(t, datasetSize)
	dataset := generate(datasetSeed, datasetSize)
	newest := slices.Clone(dataset)
	slices.SortFunc(newest, func(a, b Title) int { return int(b.AddedAt - a.AddedAt) })
	var dramas []int
	for _, ti := range dataset {
		if slices.Contains(ti.Genres, "drama") {
			dramas = append(dramas, ti.ID)
		}
	}
	ids := func(ts []Title) []int {
		var out []int
		for _, ti := range ts {
			out = append(out, ti.ID)
		}
		return out
	}
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantCode   string // error code
		wantMsg    string // substring of the error message
		check      func(t *testing.T, body []byte)
	}{
		{name: "default page", path: "/titles", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if len(p.Titles) != defaultLimit || p.Titles[0].ID != 1 || p.Total != datasetSize || p.Limit != defaultLimit || p.Offset != 0 {
				t.Errorf("page: %d titles, first %d, total %d, limit %d, offset %d", len(p.Titles), p.Titles[0].ID, p.Total, p.Limit, p.Offset)
			}
		}},
		{name: "limit and offset", path: "/titles?limit=5&offset=100", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if !slices.Equal(ids(p.Titles), []int{101, 102, 103, 104, 105}) {
				t.Errorf("got %v", ids(p.Titles))
			}
		}},
		{name: "last partial page", path: "/titles?limit=50&offset=2390", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if len(p.Titles) != 10 || p.Titles[9].ID != datasetSize {
				t.Errorf("got %d titles", len(p.Titles))
			}
		}},
		{name: "past the end", path: "/titles?offset=999999", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if p.Titles == nil || len(p.Titles) != 0 {
				t.Errorf("want an empty list, got %s", body)
			}
		}},
		{name: "newest first", path: "/titles?order=new&limit=3", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if !slices.Equal(ids(p.Titles), ids(newest[:3])) || p.Total != datasetSize {
				t.Errorf("got %v (total %d), want %v", ids(p.Titles), p.Total, ids(newest[:3]))
			}
		}},
		{name: "genre", path: "/titles?genre=drama&limit=200&offset=10", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if p.Total != len(dramas) || !slices.Equal(ids(p.Titles), dramas[10:min(210, len(dramas))]) {
				t.Errorf("got %d of %d dramas, want %d", len(p.Titles), p.Total, len(dramas))
			}
		}},
		{name: "genre newest first", path: "/titles?genre=drama&order=new&limit=200", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			for i, ti := range p.Titles {
				if !slices.Contains(ti.Genres, "drama") || i > 0 && ti.AddedAt > p.Titles[i-1].AddedAt {
					t.Fatalf("title %d at %d: %+v", ti.ID, i, ti)
				}
			}
		}},
		{name: "ids", path: "/titles?ids=3,99999,1,2", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var p page
			mustDecode(t, body, &p)
			if !slices.Equal(ids(p.Titles), []int{3, 1, 2}) || p.Total != 3 {
				t.Errorf("got %v, total %d", ids(p.Titles), p.Total)
			}
		}},
		{name: "one title", path: "/titles/3", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var ti Title
			mustDecode(t, body, &ti)
			if ti.ID != 3 || ti.Name != "Signal of Avalon" || ti.Maturity == "" || ti.DurationS == 0 || ti.AddedAt == 0 {
				t.Errorf("got %+v", ti)
			}
		}},
		{name: "last title", path: "/titles/2400", wantStatus: 200},
		{name: "episodes of a series", path: fmt.Sprintf("/titles/%d/episodes", firstSeries(dataset).ID), wantStatus: 200, check: func(t *testing.T, body []byte) {
			s := firstSeries(dataset)
			var got struct {
				Title, Seasons int
				Kind           string
				Episodes       []Episode
			}
			mustDecode(t, body, &got)
			total := 0
			for _, n := range s.episodes {
				total += n
			}
			last := got.Episodes[len(got.Episodes)-1]
			if got.Title != s.ID || got.Seasons != s.Seasons || len(got.Episodes) != total || last.Season != s.Seasons || last.Episode != s.episodes[s.Seasons-1] || last.DurationS != s.DurationS {
				t.Errorf("got %s for %+v", body, s)
			}
		}},
		{name: "episodes of a movie", path: "/titles/1/episodes", wantStatus: 200, check: func(t *testing.T, body []byte) {
			if !strings.Contains(string(body), `"episodes":[]`) {
				t.Errorf("got %s", body)
			}
		}},
		{name: "genres", path: "/genres", wantStatus: 200, check: func(t *testing.T, body []byte) {
			var got struct{ Genres []Genre }
			mustDecode(t, body, &got)
			if len(got.Genres) != len(genres) || !slices.Contains(got.Genres, Genre{"drama", len(dramas)}) {
				t.Errorf("got %s", body)
			}
		}},
		{name: "limit zero", path: "/titles?limit=0", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `limit="0"`},
		{name: "limit too big", path: "/titles?limit=201", wantStatus: 400, wantCode: "invalid_argument", wantMsg: "limit"},
		{name: "limit not a number", path: "/titles?limit=ten", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `limit="ten"`},
		{name: "negative offset", path: "/titles?offset=-1", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `offset="-1"`},
		{name: "unknown order", path: "/titles?order=best", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `order="best"`},
		{name: "unknown genre", path: "/titles?genre=opera", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `genre="opera"`},
		{name: "bad ids", path: "/titles?ids=1,x", wantStatus: 400, wantCode: "invalid_argument", wantMsg: `"x"`},
		{name: "ids with a genre", path: "/titles?ids=1&genre=drama", wantStatus: 400, wantCode: "invalid_argument", wantMsg: "genre"},
		{name: "unknown id", path: "/titles/2401", wantStatus: 404, wantCode: "not_found", wantMsg: `"2401"`},
		{name: "id zero", path: "/titles/0", wantStatus: 404, wantCode: "not_found"},
		{name: "id not a number", path: "/titles/abc", wantStatus: 404, wantCode: "not_found", wantMsg: `"abc"`},
		{name: "episodes of no title", path: "/titles/0/episodes", wantStatus: 404, wantCode: "not_found"},
		{name: "unknown route", path: "/nope", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "POST", path: "/titles/1", wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "wrong method on the list", method: "DELETE", path: "/titles", wantStatus: 405, wantCode: "method_not_allowed", wantMsg: "GET, HEAD, POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, srv.URL+tt.path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.wantCode != "" {
				var e struct {
					Error struct{ Code, Message string }
				}
				mustDecode(t, body, &e)
				if e.Error.Code != tt.wantCode || !strings.Contains(e.Error.Message, tt.wantMsg) {
					t.Errorf("error %+v, want code %q with %q", e.Error, tt.wantCode, tt.wantMsg)
				}
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

func firstSeries(ts []Title) Title {
	for _, t := range ts {
		if t.Kind == kindSeries && t.Seasons > 1 {
			return t
		}
	}
	panic("no series")
}

func mustDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url, key, body string) response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/titles", strings.NewReader(body))
	if key != "" {
		req.Header.Set(idempotency.KeyHeader, key)
	}
	return send(t, req)
}

func get(t *testing.T, url string) response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	return send(t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// outboxTitles returns the ids of the titles events recorded for search.
func outboxTitles(t *testing.T, c *catalog) []int {
	t.Helper()
	rows, err := c.db.Query(`SELECT payload FROM shoal_outbox_events WHERE topic = 'titles'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		var payload string
		var ti Title
		if err := rows.Scan(&payload); err != nil || json.Unmarshal([]byte(payload), &ti) != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		ids = append(ids, ti.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestCreate(t *testing.T) {
	// Two instances on one database.
	path := filepath.Join(t.TempDir(), "catalog.db")
	var c *catalog
	var urls []string
	const n = 50 // dataset titles
	for range 2 {
		ci, _ := openCatalog(t, path, n)
		t.Cleanup(func() { ci.db.Close() })
		if c == nil {
			ci.refreshEvery = 50 * time.Millisecond // the second keeps the default
		}
		srv := flixtest.Serve(t, ci.routes)
		c, urls = cmp.Or(c, ci), append(urls, srv.URL)
	}
	srv, srv2 := struct{ URL string }{urls[0]}, struct{ URL string }{urls[1]}
	get(t, srv2.URL+"/titles?order=new") // its snapshot is fresh: it will not look for a second

	const movie = `{"name":"The Zyx Expedition","year":2026,"genres":["documentary"],"kind":"movie","maturity":"all","duration_s":5400}`
	for _, tt := range []struct{ name, key, body, want string }{
		{"no key", "", movie, "Idempotency-Key"},
		{"no name", "k1", `{"year":2026,"genres":["drama"],"kind":"movie","maturity":"all","duration_s":5400}`, "name"},
		{"with an id", "k1", `{"id":5,"name":"X","year":2026,"genres":["drama"],"kind":"movie","maturity":"all","duration_s":5400}`, "id"},
		{"unknown genre", "k1", `{"name":"X","year":2026,"genres":["opera"],"kind":"movie","maturity":"all","duration_s":5400}`, "opera"},
		{"movie with seasons", "k1", `{"name":"X","year":2026,"genres":["drama"],"kind":"movie","seasons":2,"maturity":"all","duration_s":5400}`, "seasons"},
		{"series without seasons", "k1", `{"name":"X","year":2026,"genres":["drama"],"kind":"series","maturity":"all","duration_s":1800}`, "seasons"},
		{"bad maturity", "k1", `{"name":"X","year":2026,"genres":["drama"],"kind":"movie","maturity":"kids","duration_s":5400}`, "maturity"},
		{"no duration", "k1", `{"name":"X","year":2026,"genres":["drama"],"kind":"movie","maturity":"all"}`, "duration_s"},
		{"not JSON", "k1", `name=X`, "body"},
	} {
		if r := post(t, srv.URL, tt.key, tt.body); r.status != 400 || !strings.Contains(r.body, "invalid_argument") || !strings.Contains(r.body, tt.want) {
			t.Errorf("%s: %d %s; want 400 about %s", tt.name, r.status, r.body, tt.want)
		}
	}

	// The refused requests left k1 free.
	before := time.Now().UnixMilli()
	first := post(t, srv.URL, "k1", movie)
	if first.status != 201 || first.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("POST: %d %s", first.status, first.body)
	}
	var got Title
	if err := json.Unmarshal([]byte(first.body), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != n+1 || got.Name != "The Zyx Expedition" || got.AddedAt < before || got.Maturity != "all" {
		t.Errorf("stored %+v", got)
	}
	replay := post(t, srv.URL, "k1", movie)
	if replay.status != 201 || replay.body != first.body || replay.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("replay: %d %s", replay.status, replay.body)
	}
	series := post(t, srv2.URL, "k2", `{"name":"Tides","year":2026,"genres":["drama","mystery"],"kind":"series","seasons":2,"episodes":[3,4],"maturity":"teen","duration_s":1800}`)
	if series.status != 201 || !strings.Contains(series.body, fmt.Sprintf(`"id":%d`, n+2)) {
		t.Errorf("second POST, other instance: %d %s", series.status, series.body)
	}

	// Each instance sees both at once: by id (the other's from the
	// database), and in its lists (its own at once).
	for _, url := range []string{srv.URL, srv2.URL} {
		for _, id := range []int{n + 1, n + 2} {
			if r := get(t, fmt.Sprintf("%s/titles/%d", url, id)); r.status != 200 {
				t.Errorf("GET %s/titles/%d: %d %s", url, id, r.status, r.body)
			}
		}
	}
	if r := get(t, fmt.Sprintf("%s/titles/%d/episodes", srv.URL, n+2)); !strings.Contains(r.body, `"season":2,"episode":4,`) {
		t.Errorf("episodes: %s", r.body)
	}
	if r := get(t, srv2.URL+"/titles?order=new&limit=1"); !strings.Contains(r.body, `"name":"Tides"`) || !strings.Contains(r.body, `"total":52`) {
		t.Errorf("newest on the instance that added it: %s", r.body)
	}
	// The other instance's lists catch up within its refreshEvery.
	time.Sleep(60 * time.Millisecond)
	if r := get(t, srv.URL+"/titles?order=new&limit=2&genre=drama"); !strings.Contains(r.body, `"name":"Tides"`) || !strings.Contains(r.body, `"total":`) {
		t.Errorf("newest dramas on the other instance: %s", r.body)
	}

	// Every title, the dataset's and the two added, has its event.
	ev := outboxTitles(t, c)
	if len(ev) != n+2 || ev[0] != 1 || ev[len(ev)-1] != n+2 {
		t.Errorf("%d titles events, want %d", len(ev), n+2)
	}
}

// Three instances start at once on a new database: the dataset, and its
// events, are written exactly once.
func TestDatasetOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	var wg sync.WaitGroup
	cats := make([]*catalog, 3)
	gen := make([]bool, 3)
	errs := make([]error, 3)
	start := time.Now()
	for i := range cats {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cats[i], gen[i], errs[i] = openCatalogErr(ctx, path, datasetSize)
		})
	}
	wg.Wait()
	t.Logf("three instances ready in %v (dataset of %d titles and events written once)", time.Since(start), datasetSize)
	writers := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer cats[i].db.Close()
		if gen[i] {
			writers++
		}
		if s := cats[i].snap.Load(); len(s.titles) != datasetSize {
			t.Errorf("instance %d has %d titles", i, len(s.titles))
		}
	}
	if writers != 1 {
		t.Errorf("%d instances wrote the dataset, want 1", writers)
	}
	if ev := outboxTitles(t, cats[0]); len(ev) != datasetSize {
		t.Errorf("%d titles events, want %d", len(ev), datasetSize)
	}
}

// The dataset is written well within the 5 s a first start may take.
func TestDatasetTime(t *testing.T) {
	if raceEnabled {
		t.Skip("timing means nothing under the race detector")
	}
	start := time.Now()
	c, generated := openCatalog(t, filepath.Join(t.TempDir(), "catalog.db"), datasetSize)
	defer c.db.Close()
	took := time.Since(start)
	t.Logf("catalog dataset: %d titles and %d events written, first snapshot loaded, in %v", datasetSize, datasetSize, took)
	if !generated || took > 5*time.Second {
		t.Errorf("generated %v in %v", generated, took)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	_, srv := newTestServer(t, 10)
	if r := get(t, srv.URL+"/openapi.json"); r.status != 200 || !strings.Contains(r.body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.body)
	}
}

// A title by id, the hot path of every page: a binary search in the
// snapshot and the JSON.
func BenchmarkTitle(b *testing.B) {
	c, _ := openCatalog(b, filepath.Join(b.TempDir(), "catalog.db"), datasetSize)
	defer c.db.Close()
	var h shoal.Router
	c.routes(&h)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/titles/1234", nil))
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
