package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
)

// newTestServer returns a search instance over a new database in a temp
// folder, its events inbox mounted as in main.
func newTestServer(t testing.TB) (*index, *httptest.Server) {
	t.Helper()
	var ix *index
	var inbox *events.Inbox
	flixtest.Setup(t, func(ctx context.Context) (err error) {
		ix, inbox, err = openIndex(ctx, flixtest.SQLite(t, "search"))
		return err
	})
	return ix, flixtest.Serve(t, func(rt *shoal.Router) { routes(rt, ix, inbox) })
}

// deliver POSTs a "titles" event as an outbox does.
func deliver(t testing.TB, url, id string, payload any) int {
	t.Helper()
	return flixtest.MustDeliver(t, url, topicTitles, id, payload)
}

type answer struct {
	Query   string
	Results []Title
	Error   struct{ Code, Message string }
}

func search(t *testing.T, url, query string) (int, answer) {
	t.Helper()
	resp, err := http.Get(url + "/search?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s: body is not JSON: %v", query, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return resp.StatusCode, a
}

func TestSearch(t *testing.T) {
	_, srv := newTestServer(t)
	titles := []Title{
		{ID: 1, Name: "The Silent Harbor", Year: 1999, Genres: []string{"drama", "mystery"}},
		{ID: 2, Name: "Harbor of Lisbon", Year: 2011, Genres: []string{"romance"}},
		{ID: 3, Name: "Harbors", Year: 2020, Genres: []string{"documentary"}},
		{ID: 4, Name: "Électric Café", Year: 2001, Genres: []string{"sci-fi", "comedy"}},
		{ID: 5, Name: "Quiet Signal", Year: 1999, Genres: []string{"thriller"}},
	}
	for i, ti := range titles {
		if code := deliver(t, srv.URL, fmt.Sprint("ev-", i), ti); code != 204 {
			t.Fatalf("delivering title %d: %d", ti.ID, code)
		}
	}
	// A redelivery (same event id) and an update (new event, same title)
	// leave one entry per title.
	if code := deliver(t, srv.URL, "ev-0", titles[0]); code != 204 {
		t.Fatalf("redelivery: %d", code)
	}
	titles[4].Name = "Quiet Signals"
	if code := deliver(t, srv.URL, "ev-5", titles[4]); code != 204 {
		t.Fatalf("update: %d", code)
	}
	// Not a title: dropped (204), not retried forever.
	if code := deliver(t, srv.URL, "ev-bad", map[string]any{"name": "no id"}); code != 204 {
		t.Errorf("bad payload: %d", code)
	}

	ids := func(a answer) []int {
		var out []int
		for _, ti := range a.Results {
			out = append(out, ti.ID)
		}
		return out
	}
	tests := []struct {
		query string
		want  []int
	}{
		{"q=harbor", []int{2, 1, 3}},   // whole word first (newest year first), then prefix
		{"q=HARB", []int{3, 2, 1}},     // all prefixes: newest first
		{"q=harbor+lisbon", []int{2}},  // every word must match
		{"q=harbor%20drama", []int{1}}, // name and genre
		{"q=1999", []int{1, 5}},        // year
		{"q=sci-fi", []int{4}},         // split like the index
		{"q=electric", nil},            // accents are kept
		{"q=%C3%A9lectric+caf%C3%A9", []int{4}},
		{"q=caf%C3%A9&limit=1", []int{4}},
		{"q=harbor&limit=2", []int{2, 1}},
		{"q=signals", []int{5}},
		{"q=nothing", nil},
		{"q=%21%21", nil}, // no words
	}
	for _, tt := range tests {
		code, a := search(t, srv.URL, tt.query)
		if code != 200 || !slices.Equal(ids(a), tt.want) || a.Results == nil {
			t.Errorf("%s: %d %v, want %v", tt.query, code, ids(a), tt.want)
		}
	}
	code, a := search(t, srv.URL, "q=lisbon")
	if code != 200 || a.Query != "lisbon" || len(a.Results) != 1 ||
		a.Results[0].Name != "Harbor of Lisbon" || a.Results[0].Year != 2011 || !slices.Equal(a.Results[0].Genres, []string{"romance"}) {
		t.Errorf("result: %+v", a)
	}

	for _, bad := range []string{"", "q=", "q=+", "q=x&limit=0", "q=x&limit=51", "q=" + strings.Repeat("a", 201)} {
		if code, a := search(t, srv.URL, bad); code != 400 || a.Error.Code != "invalid_argument" {
			t.Errorf("%q: %d %+v", bad, code, a.Error)
		}
	}
}

// The catalog's first start sends 2,400 events: the index takes them
// quickly, from several senders at once as the outboxes of three catalog
// instances deliver them.
func TestManyEvents(t *testing.T) {
	_, srv := newTestServer(t)
	n, senders := 2400, 16
	if raceEnabled {
		n = 600 // the race detector slows SQLite about twentyfold
	}
	start := time.Now()
	errs := make(chan error, senders)
	for s := range senders {
		go func() {
			for i := s; i < n; i += senders {
				ti := Title{ID: i + 1, Name: fmt.Sprintf("The Hidden Station %d", i+1), Year: 1950 + i%70, Genres: []string{"drama", "thriller"}}
				if code, err := flixtest.Deliver(srv.URL, topicTitles, fmt.Sprint("ev-", i), ti); err != nil || code != 204 {
					errs <- fmt.Errorf("event %d: %d %v", i, code, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	t.Logf("%d events indexed in %v (%v each)", n, took, took/time.Duration(n))
	code, a := search(t, srv.URL, fmt.Sprintf("q=hidden+station+%d", n/2))
	if code != 200 || len(a.Results) != 1 || a.Results[0].ID != n/2 {
		t.Errorf("after %d events: %d %+v", n, code, a.Results)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	_, srv := newTestServer(t)
	if r := flixtest.Do(t, srv, "GET", "/openapi.json", ""); r.Status != 200 || !strings.Contains(r.Body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"harb", "harc"},
		{"caf\u00e9", "caf\u00ea"},
		{"a\ud7ff", "a\ue000"},
		{"9", ":"},
	} {
		if got := prefixEnd(tt.in); got != tt.want {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTitlePayload: whatever a "titles" delivery carries, search consumes
// it (or refuses what is not JSON), and keeps answering.
func FuzzTitlePayload(f *testing.F) {
	_, srv := newTestServer(f)
	var many strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&many, "w%d ", i)
	}
	flixtest.FuzzInbox(f, srv.URL, topicTitles, []string{
		`{"id":1,"name":"The Harbor","year":2020,"genres":["drama"]}`,
		`{"id":1,"name":"","year":0,"genres":[]}`,
		`{"id":0,"name":"zero"}`,
		`{"id":2,"name":"` + strings.Repeat("é", 3000) + `"}`,
		`{"id":3,"name":"` + many.String() + `"}`, // more terms than one statement may bind
		`{"id":4,"genres":["` + strings.Repeat("a,", 5000) + `"]}`,
		`{"id":"1"}`, `null`, `[]`, `{}`, `{`,
	}, func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/search?q=harbor")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("search after the delivery: %d", resp.StatusCode)
		}
	})
}
