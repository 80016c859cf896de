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

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// newTestServer serves the history API, Inbox included, over a fresh
// database of the dialect.
func newTestServer(tb testing.TB, dialect flixtest.Dialect) *httptest.Server {
	tb.Helper()
	db := dialect.Open(tb, "history")
	var l *ledger
	var inbox *events.Inbox
	flixtest.Setup(tb, func(ctx context.Context) (err error) {
		if l, err = openLedger(ctx, db); err != nil {
			return err
		}
		tb.Cleanup(func() { l.Close() })
		inbox, err = newInbox(ctx, db, l)
		return err
	})
	return flixtest.Serve(tb, func(rt *shoal.Router) { routes(rt, l, inbox) })
}

// deliver POSTs an event to the Inbox as an Outbox does, and returns the
// status.
func deliver(tb testing.TB, srv *httptest.Server, id, topic string, payload any) int {
	tb.Helper()
	return flixtest.MustDeliver(tb, srv.URL, topic, id, payload)
}

// get GETs path with the given headers (name, value pairs) and checks
// that the answer is JSON.
func get(tb testing.TB, srv *httptest.Server, path string, header ...string) flixtest.Response {
	tb.Helper()
	return flixtest.Do(tb, srv, http.MethodGet, path, "", header...)
}

// history GETs a profile's list (or its continue row), signed in as the
// profile of the path, and decodes it.
func history(tb testing.TB, srv *httptest.Server, path string) []Item {
	tb.Helper()
	who, _, _ := strings.Cut(strings.TrimPrefix(path, "/history/"), "/")
	who, _, _ = strings.Cut(who, "?")
	r := get(tb, srv, path, flixtest.As(tb, who)...)
	var h History
	if err := json.Unmarshal([]byte(r.Body), &h); err != nil || r.Status != 200 {
		tb.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	return h.Items
}

func titles(items []Item) []int64 {
	ts := []int64{}
	for _, it := range items {
		ts = append(ts, it.Title)
	}
	return ts
}

func find(items []Item, title int64) (Item, bool) {
	for _, it := range items {
		if it.Title == title {
			return it, true
		}
	}
	return Item{}, false
}

// Progress events, some duplicated and some out of order, as outboxes
// deliver them: each applies once, positions follow the reports' times,
// and a session counts once however many reports it sends.
func TestProgressEvents(t *testing.T) {
	for _, d := range flixtest.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			srv := newTestServer(t, d)
			ev := func(id, session string, title int64, pos, dur float64, at int64) {
				t.Helper()
				p := progress.Report{Profile: "p0001", Title: title, Session: session, PositionS: pos, DurationS: dur, At: at}
				if s := deliver(t, srv, id, "progress", p); s != http.StatusNoContent {
					t.Fatalf("delivering %s: %d", id, s)
				}
			}
			ev("e1", "s1", 7, 100, 1000, 1000)
			ev("e1", "s1", 7, 100, 1000, 1000) // the same event again
			ev("e2", "s1", 7, 200, 1000, 2000)
			ev("e3", "s1", 7, 150, 1000, 1500) // late: older than e2
			it, ok := find(history(t, srv, "/history/p0001"), 7)
			if !ok || it.PositionS != 200 || it.UpdatedAt != 2000 || it.Watches != 1 || it.Finished {
				t.Fatalf("after e1, e1, e2, e3: %+v; want position 200 at 2000, 1 watch", it)
			}

			// Another event of session s1, as a retried report would
			// make with a new event id: still one watch.
			ev("e4", "s1", 7, 200, 1000, 2000)
			// A second session rewatches from the start: the position
			// goes back, since it is the latest report.
			ev("e5", "s2", 7, 50, 1000, 3000)
			// Title 8 is watched to the credits, title 9 half.
			ev("e6", "s3", 8, 960, 1000, 2500)
			ev("e7", "s4", 9, 500, 1000, 2700)

			items := history(t, srv, "/history/p0001")
			if got, want := titles(items), []int64{7, 9, 8}; !slices.Equal(got, want) {
				t.Errorf("history %v, want %v (newest first)", got, want)
			}
			if it, _ := find(items, 7); it.PositionS != 50 || it.Watches != 2 || it.UpdatedAt != 3000 {
				t.Errorf("title 7: %+v; want position 50, 2 watches", it)
			}
			if it, _ := find(items, 8); !it.Finished || it.Watches != 1 {
				t.Errorf("title 8: %+v; want finished", it)
			}
			if got, want := titles(history(t, srv, "/history/p0001/continue")), []int64{7, 9}; !slices.Equal(got, want) {
				t.Errorf("continue %v, want %v (finished 8 left out)", got, want)
			}
			if got := titles(history(t, srv, "/history/p0001?limit=1")); !slices.Equal(got, []int64{7}) {
				t.Errorf("limit 1: %v", got)
			}
			// Other profiles see nothing of it.
			if got := history(t, srv, "/history/p0002"); len(got) != 0 {
				t.Errorf("p0002: %v", got)
			}
		})
	}
}

// Malformed events are dropped (answered 2xx, so not delivered again),
// and change nothing; deliveries the Inbox cannot take are refused.
func TestBadEvents(t *testing.T) {
	srv := newTestServer(t, flixtest.Dialects[0])
	for i, payload := range []any{
		map[string]any{"profile": "p0001", "title": "seven"},
		progress.Report{Profile: "p0001", Title: 0, Session: "s", PositionS: 1, DurationS: 2, At: 1},
		progress.Report{Profile: "p 1", Title: 1, Session: "s", PositionS: 1, DurationS: 2, At: 1},
		progress.Report{Profile: "p0001", Title: 1, Session: "", PositionS: 1, DurationS: 2, At: 1},
		progress.Report{Profile: "p0001", Title: 1, Session: "s", PositionS: -1, DurationS: 2, At: 1},
		progress.Report{Profile: "p0001", Title: 1, Session: "s", PositionS: 1, DurationS: 2, At: 0},
	} {
		if s := deliver(t, srv, fmt.Sprint("bad-", i), "progress", payload); s/100 != 2 {
			t.Errorf("malformed event %d: %d, want 2xx (dropped)", i, s)
		}
	}
	if got := history(t, srv, "/history/p0001"); len(got) != 0 {
		t.Errorf("after malformed events: %v", got)
	}
	if s := deliver(t, srv, "x1", "titles", map[string]int{"id": 1}); s != http.StatusNotFound {
		t.Errorf("unknown topic: %d, want 404", s)
	}
}

func TestValidation(t *testing.T) {
	srv := newTestServer(t, flixtest.Dialects[0])
	tests := []struct {
		name, method, path string
		header             []string
		wantStatus         int
		wantCode           string
	}{
		{"another's history", "GET", "/history/p0001", flixtest.As(t, "p0002"), 403, "forbidden"},
		{"another's continue", "GET", "/history/p0001/continue", flixtest.As(t, "p0002"), 403, "forbidden"},
		{"for no one", "GET", "/history/p0001", nil, 401, "unauthenticated"},
		{"a header is no sign-in", "GET", "/history/p0001", []string{"Shoal-Subject", "p0001"}, 401, "unauthenticated"},
		{"a forged token", "GET", "/history/p0001", []string{identity.UserTokenHeader, "forged"}, 401, "unauthenticated"},
		{"bad profile", "GET", "/history/p%201", nil, 400, "invalid_argument"},
		{"limit zero", "GET", "/history/p0001?limit=0", flixtest.As(t, "p0001"), 400, "invalid_argument"},
		{"limit too big", "GET", "/history/p0001?limit=201", flixtest.As(t, "p0001"), 400, "invalid_argument"},
		{"limit not a number", "GET", "/history/p0001?limit=x", flixtest.As(t, "p0001"), 400, "invalid_argument"},
		{"POST history", "POST", "/history/p0001", nil, 405, "method_not_allowed"},
		{"GET events", "GET", events.Path, nil, 405, "method_not_allowed"},
		{"unknown route", "GET", "/profiles/p0001", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := flixtest.Do(t, srv, tt.method, tt.path, "", tt.header...)
			if r.Status != tt.wantStatus {
				t.Fatalf("%d %s, want %d", r.Status, r.Body, tt.wantStatus)
			}
			var e struct{ Error struct{ Code string } }
			if err := json.Unmarshal([]byte(r.Body), &e); err != nil || e.Error.Code != tt.wantCode {
				t.Errorf("body %s, want code %q", r.Body, tt.wantCode)
			}
		})
	}
	// The signed-in profile reads its own history.
	if r := get(t, srv, "/history/p0001/continue", flixtest.As(t, "p0001")...); r.Status != 200 || !strings.Contains(r.Body, `"items":[]`) {
		t.Errorf("GET own history: %d %s", r.Status, r.Body)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	srv := newTestServer(t, flixtest.Dialects[0])
	if r := get(t, srv, "/openapi.json"); r.Status != 200 || !strings.Contains(r.Body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
	}
}

// BenchmarkProgressEvent measures one delivery through the Inbox: the
// dedup record and the two upserts, in one SQLite transaction.
func BenchmarkProgressEvent(b *testing.B) {
	srv := newTestServer(b, flixtest.Dialects[0])
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		p := progress.Report{Profile: fmt.Sprintf("p%04d", n%500+1), Title: int64(n%2400 + 1), Session: fmt.Sprint("s", n/4), PositionS: float64(n), DurationS: 1e6, At: int64(n)}
		if s := deliver(b, srv, fmt.Sprint("e", n), "progress", p); s != http.StatusNoContent {
			b.Fatal(s)
		}
	}
}

func BenchmarkContinue(b *testing.B) {
	srv := newTestServer(b, flixtest.Dialects[0])
	for n := range 200 {
		p := progress.Report{Profile: "p0001", Title: int64(n + 1), Session: fmt.Sprint("s", n), PositionS: 10, DurationS: 100, At: int64(n + 1)}
		deliver(b, srv, fmt.Sprint("e", n), "progress", p)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := get(b, srv, "/history/p0001/continue", flixtest.As(b, "p0001")...); r.Status != 200 {
			b.Fatal(r.Status)
		}
	}
}

// FuzzProgressPayload: whatever a "progress" delivery carries, history
// consumes it (or refuses what is not JSON), and keeps serving.
func FuzzProgressPayload(f *testing.F) {
	srv := newTestServer(f, flixtest.Dialects[0])
	flixtest.FuzzInbox(f, srv.URL, "progress", []string{
		`{"profile":"p0001","title":7,"session":"s1","position_s":100,"duration_s":1000,"at":1000}`,
		`{"profile":"p0001","title":7,"session":"s1","position_s":2000,"duration_s":1000,"at":2000}`,
		`{"profile":"p0001","title":"seven"}`,
		`{"profile":"p 1","title":1,"session":"s","position_s":1,"duration_s":2,"at":1}`,
		`{"profile":"p0001","title":9223372036854775807,"session":"s","position_s":1e308,"duration_s":1e308,"at":9223372036854775807}`,
		`{"profile":"p0001","title":1,"session":"s","position_s":1e309,"duration_s":2,"at":1}`,
		`{"profile":"p0001","title":1,"session":"` + strings.Repeat("s", 10000) + `","position_s":1,"duration_s":2,"at":1}`,
		`null`, `[]`, `"progress"`, `{}`, `{`,
	}, func(t *testing.T) {
		if r := get(t, srv, "/history/p0001", flixtest.As(t, "p0001")...); r.Status != 200 {
			t.Fatalf("history after the delivery: %d %s", r.Status, r.Body)
		}
	})
}
