package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/identity"
)

func TestStartSession(t *testing.T) {
	deps := map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog}
	p := newTestPlayback(t, flixtest.Dialects[0], deps)
	tests := []struct {
		name        string
		body        string
		as          string   // the signed-in profile
		header      []string // instead, when as is ""
		wantStatus  int
		wantCode    string // of an error
		wantProfile string // of a session
	}{
		{"adult, adult title", `{"profile":"p0001","title":1}`, "p0001", nil, 201, "", "p0001"},
		{"adult, title of no maturity", `{"profile":"p0001","title":4}`, "p0001", nil, 403, "not_allowed", ""},
		{"kids, all", `{"profile":"p0010","title":2}`, "p0010", nil, 201, "", "p0010"},
		{"kids, adult title", `{"profile":"p0010","title":1}`, "p0010", nil, 403, "not_allowed", ""},
		{"kids, teen title", `{"profile":"p0010","title":3}`, "p0010", nil, 403, "not_allowed", ""},
		{"kids, title of no maturity", `{"profile":"p0010","title":4}`, "p0010", nil, 403, "not_allowed", ""},
		{"teen, teen title", `{"profile":"p0020","title":3}`, "p0020", nil, 201, "", "p0020"},
		{"teen, adult title", `{"profile":"p0020","title":1}`, "p0020", nil, 403, "not_allowed", ""},
		{"profile from the signed-in one", `{"title":2}`, "p0010", nil, 201, "", "p0010"},
		{"another profile", `{"profile":"p0001","title":2}`, "p0010", nil, 403, "forbidden", ""},
		{"no one signed in", `{"profile":"p0001","title":1}`, "", nil, 401, "unauthenticated", ""},
		{"a header is no sign-in", `{"profile":"p0001","title":1}`, "", []string{"Shoal-Subject", "p0001"}, 401, "unauthenticated", ""},
		{"a forged token", `{"profile":"p0001","title":1}`, "", []string{identity.UserTokenHeader, "forged"}, 401, "unauthenticated", ""},
		{"unknown title", `{"profile":"p0001","title":99}`, "p0001", nil, 404, "not_found", ""},
		{"unknown profile", `{"profile":"p9999","title":1}`, "p9999", nil, 404, "not_found", ""},
		{"no title", `{"profile":"p0001"}`, "p0001", nil, 400, "invalid_argument", ""},
		{"title as a string", `{"profile":"p0001","title":"1"}`, "p0001", nil, 400, "invalid_argument", ""},
		{"unknown field", `{"profile":"p0001","title":1,"quality":"4k"}`, "p0001", nil, 400, "invalid_argument", ""},
		{"bad profile", `{"profile":"../p1","title":1}`, "../p1", nil, 400, "invalid_argument", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if tt.as != "" {
				h = flixtest.As(t, tt.as)
			}
			r := flixtest.Do(t, p.srv, "POST", "/sessions", tt.body, h...)
			if r.Status != tt.wantStatus {
				t.Fatalf("%d %s, want %d", r.Status, r.Body, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if code := flixtest.ErrorCode(t, r.Body); code != tt.wantCode {
					t.Errorf("code %q, want %q", code, tt.wantCode)
				}
				return
			}
			var s Session
			if err := json.Unmarshal([]byte(r.Body), &s); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("https://cdn.flix.example/v1/titles/%d/master.m3u8?session=%s", s.Title, s.ID)
			if s.Profile != tt.wantProfile || s.ID == "" || s.ManifestURL != want || s.StartedAt == 0 {
				t.Errorf("session %+v; want profile %s, manifest %s", s, tt.wantProfile, want)
			}
			// GET gives it back.
			got := flixtest.Do(t, p.srv, "GET", "/sessions/"+s.ID, "", flixtest.As(t, s.Profile)...)
			var again Session
			if err := json.Unmarshal([]byte(got.Body), &again); err != nil || again != s {
				t.Errorf("GET: %d %s; want %+v", got.Status, got.Body, s)
			}
		})
	}
}

// When a dependency fails, the session is refused with a status that says
// so, and nothing is stored.
func TestStartSessionDependencies(t *testing.T) {
	tests := []struct {
		name       string
		deps       map[string]http.Handler
		wantStatus int
		wantCode   string
	}{
		{"catalog fails", map[string]http.Handler{"profiles": testProfiles, "catalog": failing}, 502, "bad_gateway"},
		{"profiles fails", map[string]http.Handler{"profiles": failing, "catalog": testCatalog}, 502, "bad_gateway"},
		{"no catalog", map[string]http.Handler{"profiles": testProfiles}, 503, "unavailable"},
		{"no profiles", map[string]http.Handler{"catalog": testCatalog}, 503, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPlayback(t, flixtest.Dialects[0], tt.deps)
			r := flixtest.Do(t, p.srv, "POST", "/sessions", `{"profile":"p0001","title":1}`, flixtest.As(t, "p0001")...)
			if r.Status != tt.wantStatus || flixtest.ErrorCode(t, r.Body) != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Body, tt.wantStatus, tt.wantCode)
			}
			var n int
			if err := p.db.QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d sessions stored (%v)", n, err)
			}
		})
	}
}

// A start with an Idempotency-Key, retried, starts one session.
func TestStartSessionIdempotent(t *testing.T) {
	p := newTestPlayback(t, flixtest.Dialects[0], map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog})
	body := `{"profile":"p0001","title":2}`
	first := flixtest.Do(t, p.srv, "POST", "/sessions", body, as(t, "p0001", key("start-1"))...)
	again := flixtest.Do(t, p.srv, "POST", "/sessions", body, as(t, "p0001", key("start-1"))...)
	if first.Status != 201 || again.Status != 201 || again.Body != first.Body || again.Header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("first %d %s; again %d %s %v", first.Status, first.Body, again.Status, again.Body, again.Header)
	}
	// A refused start leaves the key free for the fixed request.
	if r := flixtest.Do(t, p.srv, "POST", "/sessions", `{"profile":"p0010","title":1}`, as(t, "p0010", key("start-2"))...); r.Status != 403 {
		t.Fatalf("kids on an adult title: %d %s", r.Status, r.Body)
	}
	if r := flixtest.Do(t, p.srv, "POST", "/sessions", `{"profile":"p0010","title":2}`, as(t, "p0010", key("start-2"))...); r.Status != 201 || r.Header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("fixed start with the key: %d %s", r.Status, r.Body)
	}
	var n int
	if err := p.db.QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d sessions (%v), want 2", n, err)
	}
}

// events returns how many events the outbox holds.
func (p *testPlayback) events(t *testing.T) int64 {
	t.Helper()
	st, err := p.outbox.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One delivery per subscriber of every event.
	if st.Pending+st.Delivered != 2*st.Events {
		t.Errorf("stats %+v: want 2 deliveries per event", st)
	}
	return st.Events
}

// A progress report publishes exactly one event per key: a repeated key
// replays the answer and publishes nothing more, on both engines.
func TestProgressOncePerKey(t *testing.T) {
	for _, d := range flixtest.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			p := newTestPlayback(t, d, map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog})
			s := start(t, p.srv, "p0001", 1)
			path := "/sessions/" + s.ID + "/progress"

			first := flixtest.Do(t, p.srv, "POST", path, `{"position_s":60}`, as(t, "p0001", key("k1"))...)
			if first.Status != 200 || first.Header.Get(idempotency.ReplayedHeader) != "" {
				t.Fatalf("first report: %d %s", first.Status, first.Body)
			}
			var pr progress.Report
			if err := json.Unmarshal([]byte(first.Body), &pr); err != nil {
				t.Fatal(err)
			}
			want := progress.Report{Profile: "p0001", Title: 1, Session: s.ID, PositionS: 60, DurationS: 5400, At: pr.At}
			if pr != want || pr.At < s.StartedAt {
				t.Errorf("report %+v, want %+v (the catalog's duration)", pr, want)
			}
			if n := p.events(t); n != 1 {
				t.Fatalf("%d events after one report, want 1", n)
			}
			replay := flixtest.Do(t, p.srv, "POST", path, `{"position_s":60}`, as(t, "p0001", key("k1"))...)
			if replay.Status != 200 || replay.Body != first.Body || replay.Header.Get(idempotency.ReplayedHeader) != "true" {
				t.Errorf("replay: %d %s %v", replay.Status, replay.Body, replay.Header)
			}
			if n := p.events(t); n != 1 {
				t.Errorf("%d events after a replay, want 1", n)
			}
			// The same key, several attempts at once (hedged, failed
			// over): still one event.
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					if r := flixtest.Do(t, p.srv, "POST", path, `{"position_s":120,"duration_s":5000}`, as(t, "p0001", key("k2"))...); r.Status != 200 {
						t.Errorf("concurrent k2: %d %s", r.Status, r.Body)
					}
				})
			}
			wg.Wait()
			if n := p.events(t); n != 2 {
				t.Errorf("%d events after k2, want 2", n)
			}
			// The payload is the answer, as history reads it.
			var payload string
			if err := p.db.QueryRow(`SELECT payload FROM shoal_outbox_events ORDER BY created_at DESC, id DESC LIMIT 1`).Scan(&payload); err != nil {
				t.Fatal(err)
			}
			var ev progress.Report
			if err := json.Unmarshal([]byte(payload), &ev); err != nil || ev.Session != s.ID || ev.PositionS != 120 || ev.DurationS != 5000 || ev.Profile != "p0001" || ev.Title != 1 || ev.At == 0 {
				t.Errorf("payload %s (%v)", payload, err)
			}
			got := flixtest.Do(t, p.srv, "GET", "/sessions/"+s.ID, "", flixtest.As(t, "p0001")...)
			var sess Session
			if err := json.Unmarshal([]byte(got.Body), &sess); err != nil || sess.PositionS != 120 || sess.DurationS != 5000 || sess.UpdatedAt != ev.At {
				t.Errorf("session after reports: %s", got.Body)
			}
			st, err := p.outbox.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var routes []string
			for _, r := range st.Routes {
				routes = append(routes, r.Topic+">"+r.Service)
			}
			if want := []string{"progress>history", "progress>recommendations"}; !slices.Equal(routes, want) {
				t.Errorf("routes %v, want %v", routes, want)
			}
		})
	}
}

func TestProgressValidation(t *testing.T) {
	p := newTestPlayback(t, flixtest.Dialects[0], map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog})
	s := start(t, p.srv, "p0001", 1)
	noDuration := start(t, p.srv, "p0001", 5)
	path := "/sessions/" + s.ID + "/progress"
	tests := []struct {
		name, path, body string
		header           []string
		wantStatus       int
		wantCode         string
	}{
		{"no key", path, `{"position_s":1}`, flixtest.As(t, "p0001"), 400, "invalid_argument"},
		{"no position", path, `{"duration_s":100}`, as(t, "p0001", key("v1")), 400, "invalid_argument"},
		{"negative position", path, `{"position_s":-1}`, as(t, "p0001", key("v2")), 400, "invalid_argument"},
		{"zero duration", path, `{"position_s":1,"duration_s":0}`, as(t, "p0001", key("v3")), 400, "invalid_argument"},
		{"position as a string", path, `{"position_s":"1"}`, as(t, "p0001", key("v4")), 400, "invalid_argument"},
		{"unknown field", path, `{"position_s":1,"speed":2}`, as(t, "p0001", key("v5")), 400, "invalid_argument"},
		{"no duration anywhere", "/sessions/" + noDuration.ID + "/progress", `{"position_s":1}`, as(t, "p0001", key("v6")), 400, "invalid_argument"},
		{"unknown session", "/sessions/nope/progress", `{"position_s":1}`, as(t, "p0001", key("v7")), 404, "not_found"},
		{"another's session", path, `{"position_s":1}`, as(t, "p0010", key("v8")), 403, "forbidden"},
		{"for no one", path, `{"position_s":1}`, key("v9"), 401, "unauthenticated"},
		{"a header is no sign-in", path, `{"position_s":1}`, append(key("v10"), "Shoal-Subject", "p0001"), 401, "unauthenticated"},
		{"GET progress", path, ``, nil, 405, "method_not_allowed"},
		{"DELETE session", "/sessions/" + s.ID, ``, nil, 405, "method_not_allowed"},
		{"GET unknown session", "/sessions/nope", ``, flixtest.As(t, "p0001"), 404, "not_found"},
		{"GET a session for no one", "/sessions/" + s.ID, ``, nil, 401, "unauthenticated"},
		{"unknown route", "/titles/1", ``, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.body == "" {
				method = map[string]string{"GET progress": "GET", "DELETE session": "DELETE"}[tt.name]
				if method == "" {
					method = "GET"
				}
			}
			r := flixtest.Do(t, p.srv, method, tt.path, tt.body, tt.header...)
			if r.Status != tt.wantStatus || flixtest.ErrorCode(t, r.Body) != tt.wantCode {
				t.Fatalf("%d %s, want %d %s", r.Status, r.Body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if n := p.events(t); n != 0 {
		t.Errorf("%d events published by refused reports", n)
	}
	// Refusals left their keys free: the fixed report goes through.
	if r := flixtest.Do(t, p.srv, "POST", path, `{"position_s":99999}`, as(t, "p0001", key("v2"))...); r.Status != 200 || !strings.Contains(r.Body, `"position_s":5400`) {
		t.Errorf("report past the end with a refused report's key: %d %s; want 200, position clamped to 5400", r.Status, r.Body)
	}
	// The signed-in profile reads its session; others may not.
	if r := flixtest.Do(t, p.srv, "GET", "/sessions/"+s.ID, "", flixtest.As(t, "p0010")...); r.Status != 403 {
		t.Errorf("GET another's session: %d %s", r.Status, r.Body)
	}
	if r := flixtest.Do(t, p.srv, "GET", "/sessions/"+s.ID, "", flixtest.As(t, "p0001")...); r.Status != 200 {
		t.Errorf("GET own session: %d %s", r.Status, r.Body)
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	p := newTestPlayback(t, flixtest.Dialects[0], nil)
	if r := flixtest.Do(t, p.srv, "GET", "/openapi.json", ""); r.Status != 200 || !strings.Contains(r.Body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
	}
}

// BenchmarkProgress measures a report as the handler serves it: the key's
// claim, the session lookup, and one transaction with the update, the
// event and the answer's record.
func BenchmarkProgress(b *testing.B) {
	p := newTestPlayback(b, flixtest.Dialects[0], map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog})
	s := start(b, p.srv, "p0001", 1)
	path := p.srv.URL + "/sessions/" + s.ID + "/progress"
	token := flixtest.Token(b, "p0001")
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		req, err := http.NewRequest("POST", path, strings.NewReader(fmt.Sprintf(`{"position_s":%d}`, n%5400)))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set(idempotency.KeyHeader, fmt.Sprint("bench-", n))
		req.Header.Set(identity.UserTokenHeader, token)
		resp, err := p.srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkStart measures a session start against fake dependencies on
// loopback: two lookups at once and one insert.
func BenchmarkStart(b *testing.B) {
	p := newTestPlayback(b, flixtest.Dialects[0], map[string]http.Handler{"profiles": testProfiles, "catalog": testCatalog})
	b.ReportAllocs()
	for b.Loop() {
		start(b, p.srv, "p0001", 2)
	}
}
