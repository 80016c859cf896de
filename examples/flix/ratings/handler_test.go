package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/idempotency"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(newHandler(openTestStore(t, filepath.Join(t.TempDir(), "ratings.db"))))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, path, key, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(idempotency.KeyHeader, key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestValidation(t *testing.T) {
	srv := newTestServer(t)
	long := strings.Repeat("x", 65)
	tests := []struct {
		name, method, path, key, body string
		wantStatus                    int
		wantCode                      string
		wantMsg                       []string // the bad field and value
	}{
		{"no key", "PUT", "/ratings/alice/7", "", `{"score":4}`, 400, "invalid_argument", []string{"Idempotency-Key", "required"}},
		{"key with space", "PUT", "/ratings/alice/7", "a b", `{"score":4}`, 400, "invalid_argument", []string{"Idempotency-Key", `"a b"`}},
		{"score too high", "PUT", "/ratings/alice/7", "k1", `{"score":6}`, 400, "invalid_argument", []string{"score 6"}},
		{"score zero", "PUT", "/ratings/alice/7", "k1", `{"score":0}`, 400, "invalid_argument", []string{"score 0"}},
		{"score fraction", "PUT", "/ratings/alice/7", "k1", `{"score":4.5}`, 400, "invalid_argument", []string{"score 4.5"}},
		{"score string", "PUT", "/ratings/alice/7", "k1", `{"score":"4"}`, 400, "invalid_argument", []string{`score "4"`}},
		{"score null", "PUT", "/ratings/alice/7", "k1", `{"score":null}`, 400, "invalid_argument", []string{"score null"}},
		{"score missing", "PUT", "/ratings/alice/7", "k1", `{}`, 400, "invalid_argument", []string{"score is required"}},
		{"unknown field", "PUT", "/ratings/alice/7", "k1", `{"score":4,"stars":5}`, 400, "invalid_argument", []string{"stars"}},
		{"not JSON", "PUT", "/ratings/alice/7", "k1", `score=4`, 400, "invalid_argument", []string{"body"}},
		{"empty body", "PUT", "/ratings/alice/7", "k1", ``, 400, "invalid_argument", []string{"body"}},
		{"two objects", "PUT", "/ratings/alice/7", "k1", `{"score":4}{"score":5}`, 400, "invalid_argument", []string{"body"}},
		{"body too big", "PUT", "/ratings/alice/7", "k1", `{"score":4,"x":"` + strings.Repeat("a", 2000) + `"}`, 400, "invalid_argument", []string{"body"}},
		{"bad title", "PUT", "/ratings/alice/seven", "k1", `{"score":4}`, 400, "invalid_argument", []string{`title "seven"`}},
		{"title zero", "GET", "/ratings/alice/0", "", "", 400, "invalid_argument", []string{`title "0"`}},
		{"negative title", "GET", "/titles/-3/average", "", "", 400, "invalid_argument", []string{`title "-3"`}},
		{"bad profile", "PUT", "/ratings/al%20ice/7", "k1", `{"score":4}`, 400, "invalid_argument", []string{`profile "al ice"`}},
		{"long profile", "GET", "/ratings/" + long + "/7", "", "", 400, "invalid_argument", []string{"profile"}},
		{"not rated", "GET", "/ratings/alice/7", "", "", 404, "not_found", []string{`"alice"`, "7"}},
		{"unknown route", "GET", "/nope", "", "", 404, "not_found", nil},
		{"wrong method", "POST", "/ratings/alice/7", "k1", `{"score":4}`, 405, "method_not_allowed", []string{"POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.method, tt.path, tt.key, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(r.body), &e); err != nil {
				t.Fatalf("%s: %v", r.body, err)
			}
			if e.Error.Code != tt.wantCode {
				t.Errorf("code %q, want %q", e.Error.Code, tt.wantCode)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(e.Error.Message, w) {
					t.Errorf("message %q lacks %q", e.Error.Message, w)
				}
			}
		})
	}
	// Nothing above was written.
	if r := do(t, srv, "GET", "/titles/7/average", "", ""); r.status != 200 || !strings.Contains(r.body, `"count":0`) {
		t.Errorf("after rejected writes: %d %s", r.status, r.body)
	}
}

func TestIdempotentPut(t *testing.T) {
	srv := newTestServer(t)
	first := do(t, srv, "PUT", "/ratings/alice/7", "key-1", `{"score": 4}`)
	if first.status != 200 || first.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first PUT: %d %v %s", first.status, first.header, first.body)
	}
	var r Rating
	if err := json.Unmarshal([]byte(first.body), &r); err != nil || r.Profile != "alice" || r.Title != 7 || r.Score != 4 {
		t.Fatalf("first PUT answered %s (%v)", first.body, err)
	}

	// Another write, with its own key, changes the rating.
	if second := do(t, srv, "PUT", "/ratings/alice/7", "key-2", `{"score":2}`); second.status != 200 {
		t.Fatalf("second PUT: %d %s", second.status, second.body)
	}
	// A retry of the first write gets the first answer, and applies nothing:
	// the rating stays 2.
	replay := do(t, srv, "PUT", "/ratings/alice/7", "key-1", `{"score": 4}`)
	if replay.status != 200 || replay.body != first.body || replay.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("replay: %d %q %s; want the first answer %s", replay.status, replay.header.Get(idempotency.ReplayedHeader), replay.body, first.body)
	}
	got := do(t, srv, "GET", "/ratings/alice/7", "", "")
	if got.status != 200 || !strings.Contains(got.body, `"score":2`) {
		t.Errorf("GET after replay: %d %s; want score 2", got.status, got.body)
	}
	avg := do(t, srv, "GET", "/titles/7/average", "", "")
	if avg.status != 200 || strings.TrimSpace(avg.body) != `{"title":7,"average":2,"count":1}` {
		t.Errorf("average: %d %s", avg.status, avg.body)
	}

	// The key with another request is refused, and changes nothing. The
	// SDK compares bodies byte for byte (a retry resends the same bytes):
	// the same score spelt otherwise is another request too.
	for _, other := range []struct{ path, body string }{
		{"/ratings/alice/7", `{"score":5}`},
		{"/ratings/alice/7", `{"score":4}`},
		{"/ratings/alice/8", `{"score": 4}`},
	} {
		reused := do(t, srv, "PUT", other.path, "key-1", other.body)
		if reused.status != 422 || !strings.Contains(reused.body, "idempotency_key_reused") {
			t.Errorf("reused key for PUT %s %s: %d %s", other.path, other.body, reused.status, reused.body)
		}
	}
	if got := do(t, srv, "GET", "/ratings/alice/7", "", ""); !strings.Contains(got.body, `"score":2`) {
		t.Errorf("after the reused key: %s", got.body)
	}
}

func TestAverageEndpoint(t *testing.T) {
	srv := newTestServer(t)
	for i, p := range []string{"ann", "bob", "cat", "dan"} {
		if r := do(t, srv, "PUT", "/ratings/"+p+"/42", "k-"+p, `{"score":`+string(rune('2'+i))+`}`); r.status != 200 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
	}
	r := do(t, srv, "GET", "/titles/42/average", "", "")
	if strings.TrimSpace(r.body) != `{"title":42,"average":3.5,"count":4}` {
		t.Errorf("average: %d %s", r.status, r.body)
	}
	r = do(t, srv, "GET", "/titles/43/average", "", "")
	if strings.TrimSpace(r.body) != `{"title":43,"average":null,"count":0}` {
		t.Errorf("no ratings: %d %s", r.status, r.body)
	}
}

// A write refused before it touched anything leaves its key free: the
// caller fixes the body and sends it again with the same key.
func TestRefusedWriteKeepsKey(t *testing.T) {
	srv := newTestServer(t)
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":6}`); r.status != 400 {
		t.Fatalf("score 6: %d %s", r.status, r.body)
	}
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":3}`); r.status != 200 || r.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("fixed write with the same key: %d %v %s", r.status, r.header, r.body)
	}
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":3}`); r.status != 200 || r.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("retry: %d %v %s", r.status, r.header, r.body)
	}
}

func TestProfileRatings(t *testing.T) {
	srv := newTestServer(t)
	if r := do(t, srv, "GET", "/ratings/nobody", "", ""); r.status != 200 || strings.TrimSpace(r.body) != `{"profile":"nobody","ratings":[]}` {
		t.Errorf("no ratings: %d %s", r.status, r.body)
	}
	for i, title := range []string{"5", "9", "2"} {
		if r := do(t, srv, "PUT", "/ratings/ann/"+title, fmt.Sprint("k", i), `{"score":4}`); r.status != 200 {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		time.Sleep(2 * time.Millisecond) // distinct updated_at
	}
	r := do(t, srv, "GET", "/ratings/ann", "", "")
	var got struct {
		Profile string
		Ratings []Rating
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.status != 200 {
		t.Fatalf("%d %s (%v)", r.status, r.body, err)
	}
	var titles []int64
	for _, rt := range got.Ratings {
		titles = append(titles, rt.Title)
	}
	if got.Profile != "ann" || !slices.Equal(titles, []int64{2, 9, 5}) {
		t.Errorf("got %s; want ann's titles 2, 9, 5 (latest first)", r.body)
	}
}

// Profile routes follow the flix rule: another signed-in profile is
// refused; the same one, or none (a call from inside the system), is not.
func TestSubject(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		method, path, subject, key, body string
		want                             int
	}{
		{"PUT", "/ratings/ann/7", "bob", "k1", `{"score":3}`, 403},
		{"PUT", "/ratings/ann/7", "ann", "k2", `{"score":3}`, 200},
		// ann's key and request, sent by bob: refused, not ann's answer
		// replayed (keys are per subject).
		{"PUT", "/ratings/ann/7", "bob", "k2", `{"score":3}`, 403},
		{"GET", "/ratings/ann/7", "bob", "", "", 403},
		{"GET", "/ratings/ann/7", "ann", "", "", 200},
		{"GET", "/ratings/ann/7", "", "", "", 200},
		{"GET", "/ratings/ann", "bob", "", "", 403},
		{"GET", "/ratings/ann", "ann", "", "", 200},
		{"GET", "/titles/7/average", "bob", "", "", 200},
		{"GET", "/top", "bob", "", "", 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		if tt.subject != "" {
			req.Header.Set(SubjectHeader, tt.subject)
		}
		if tt.key != "" {
			req.Header.Set(idempotency.KeyHeader, tt.key)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want || tt.want == 403 && !strings.Contains(string(b), `"forbidden"`) {
			t.Errorf("%s %s as %q: %d %s; want %d", tt.method, tt.path, tt.subject, resp.StatusCode, b, tt.want)
		}
	}
}

// /openapi.json is JSON and documents every route the mux serves, and
// nothing else.
func TestOpenAPI(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "ratings.db"))
	srv := httptest.NewServer(newHandler(st))
	defer srv.Close()
	r := do(t, srv, "GET", "/openapi.json", "", "")
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || r.status != 200 || doc.OpenAPI != "3.1.0" {
		t.Fatalf("%d, %v, openapi %q", r.status, err, doc.OpenAPI)
	}
	served := map[string]bool{}
	for _, rt := range (&handler{st: st}).routes() {
		served[rt.pattern] = true
		if _, ok := doc.Paths[rt.pattern][strings.ToLower(rt.method)]; !ok {
			t.Errorf("%s %s is not in openapi.json", rt.method, rt.pattern)
		}
	}
	for p := range doc.Paths {
		if !served[p] {
			t.Errorf("openapi.json lists %s, which is not served", p)
		}
	}
}
