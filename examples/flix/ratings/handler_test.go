package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/identity"
)

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	return flixtest.Serve(t, openTestStore(t, filepath.Join(t.TempDir(), "ratings.db")).routes)
}

// do sends a request, with an Idempotency-Key if key is not empty, signed
// in as the profile of a /ratings/{profile} path.
func do(t *testing.T, srv *httptest.Server, method, path, key, body string) flixtest.Response {
	t.Helper()
	var h []string
	if key != "" {
		h = []string{idempotency.KeyHeader, key}
	}
	if rest, ok := strings.CutPrefix(path, "/ratings/"); ok {
		who, _, _ := strings.Cut(rest, "/")
		if u, err := url.PathUnescape(who); err == nil {
			h = append(h, flixtest.As(t, u)...)
		}
	}
	return flixtest.Do(t, srv, method, path, body, h...)
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
			if r.Status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.wantStatus, r.Body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(r.Body), &e); err != nil {
				t.Fatalf("%s: %v", r.Body, err)
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
	if r := do(t, srv, "GET", "/titles/7/average", "", ""); r.Status != 200 || !strings.Contains(r.Body, `"count":0`) {
		t.Errorf("after rejected writes: %d %s", r.Status, r.Body)
	}
}

func TestIdempotentPut(t *testing.T) {
	srv := newTestServer(t)
	first := do(t, srv, "PUT", "/ratings/alice/7", "key-1", `{"score": 4}`)
	if first.Status != 200 || first.Header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first PUT: %d %v %s", first.Status, first.Header, first.Body)
	}
	var r Rating
	if err := json.Unmarshal([]byte(first.Body), &r); err != nil || r.Profile != "alice" || r.Title != 7 || r.Score != 4 {
		t.Fatalf("first PUT answered %s (%v)", first.Body, err)
	}

	// Another write, with its own key, changes the rating.
	if second := do(t, srv, "PUT", "/ratings/alice/7", "key-2", `{"score":2}`); second.Status != 200 {
		t.Fatalf("second PUT: %d %s", second.Status, second.Body)
	}
	// A retry of the first write gets the first answer, and applies nothing:
	// the rating stays 2.
	replay := do(t, srv, "PUT", "/ratings/alice/7", "key-1", `{"score": 4}`)
	if replay.Status != 200 || replay.Body != first.Body || replay.Header.Get(idempotency.ReplayedHeader) != "true" {
		t.Errorf("replay: %d %q %s; want the first answer %s", replay.Status, replay.Header.Get(idempotency.ReplayedHeader), replay.Body, first.Body)
	}
	got := do(t, srv, "GET", "/ratings/alice/7", "", "")
	if got.Status != 200 || !strings.Contains(got.Body, `"score":2`) {
		t.Errorf("GET after replay: %d %s; want score 2", got.Status, got.Body)
	}
	avg := do(t, srv, "GET", "/titles/7/average", "", "")
	if avg.Status != 200 || strings.TrimSpace(avg.Body) != `{"title":7,"average":2,"count":1}` {
		t.Errorf("average: %d %s", avg.Status, avg.Body)
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
		if reused.Status != 422 || !strings.Contains(reused.Body, "idempotency_key_reused") {
			t.Errorf("reused key for PUT %s %s: %d %s", other.path, other.body, reused.Status, reused.Body)
		}
	}
	if got := do(t, srv, "GET", "/ratings/alice/7", "", ""); !strings.Contains(got.Body, `"score":2`) {
		t.Errorf("after the reused key: %s", got.Body)
	}
}

func TestAverageEndpoint(t *testing.T) {
	srv := newTestServer(t)
	for i, p := range []string{"ann", "bob", "cat", "dan"} {
		if r := do(t, srv, "PUT", "/ratings/"+p+"/42", "k-"+p, `{"score":`+string(rune('2'+i))+`}`); r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
	}
	r := do(t, srv, "GET", "/titles/42/average", "", "")
	if strings.TrimSpace(r.Body) != `{"title":42,"average":3.5,"count":4}` {
		t.Errorf("average: %d %s", r.Status, r.Body)
	}
	r = do(t, srv, "GET", "/titles/43/average", "", "")
	if strings.TrimSpace(r.Body) != `{"title":43,"average":null,"count":0}` {
		t.Errorf("no ratings: %d %s", r.Status, r.Body)
	}
}

// A write refused before it touched anything leaves its key free: the
// caller fixes the body and sends it again with the same key.
func TestRefusedWriteKeepsKey(t *testing.T) {
	srv := newTestServer(t)
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":6}`); r.Status != 400 {
		t.Fatalf("score 6: %d %s", r.Status, r.Body)
	}
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":3}`); r.Status != 200 || r.Header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("fixed write with the same key: %d %v %s", r.Status, r.Header, r.Body)
	}
	if r := do(t, srv, "PUT", "/ratings/bob/9", "key-9", `{"score":3}`); r.Status != 200 || r.Header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("retry: %d %v %s", r.Status, r.Header, r.Body)
	}
}

func TestProfileRatings(t *testing.T) {
	srv := newTestServer(t)
	if r := do(t, srv, "GET", "/ratings/nobody", "", ""); r.Status != 200 || strings.TrimSpace(r.Body) != `{"profile":"nobody","ratings":[]}` {
		t.Errorf("no ratings: %d %s", r.Status, r.Body)
	}
	for i, title := range []string{"5", "9", "2"} {
		if r := do(t, srv, "PUT", "/ratings/ann/"+title, fmt.Sprint("k", i), `{"score":4}`); r.Status != 200 {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		time.Sleep(2 * time.Millisecond) // distinct updated_at
	}
	r := do(t, srv, "GET", "/ratings/ann", "", "")
	var got struct {
		Profile string
		Ratings []Rating
	}
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil || r.Status != 200 {
		t.Fatalf("%d %s (%v)", r.Status, r.Body, err)
	}
	var titles []int64
	for _, rt := range got.Ratings {
		titles = append(titles, rt.Title)
	}
	if got.Profile != "ann" || !slices.Equal(titles, []int64{2, 9, 5}) {
		t.Errorf("got %s; want ann's titles 2, 9, 5 (latest first)", r.Body)
	}
}

// Profile routes follow the flix rule: only the signed-in profile, as
// the request's user token says, is answered; another one is refused
// (403), and so is a request for no one, or whose only claim is a header
// (401: finding 2 of issue 13, where such a request read anyone's
// ratings).
func TestSubject(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		method, path, as, key, body string
		header                      []string // when as is ""
		want                        int
	}{
		{"PUT", "/ratings/ann/7", "bob", "k1", `{"score":3}`, nil, 403},
		{"PUT", "/ratings/ann/7", "ann", "k2", `{"score":3}`, nil, 200},
		// ann's key and request, sent by bob: refused, not ann's answer
		// replayed (keys are per subject).
		{"PUT", "/ratings/ann/7", "bob", "k2", `{"score":3}`, nil, 403},
		{"PUT", "/ratings/ann/7", "", "k3", `{"score":1}`, nil, 401},
		{"GET", "/ratings/ann/7", "bob", "", "", nil, 403},
		{"GET", "/ratings/ann/7", "ann", "", "", nil, 200},
		{"GET", "/ratings/ann/7", "", "", "", nil, 401},
		{"GET", "/ratings/ann/7", "", "", "", []string{"Shoal-Subject", "ann"}, 401},
		{"GET", "/ratings/ann/7", "", "", "", []string{identity.UserTokenHeader, "forged"}, 401},
		{"GET", "/ratings/ann", "bob", "", "", nil, 403},
		{"GET", "/ratings/ann", "ann", "", "", nil, 200},
		{"GET", "/ratings/ann", "", "", "", nil, 401},
		{"GET", "/titles/7/average", "bob", "", "", nil, 200},
		{"GET", "/titles/7/average", "", "", "", nil, 200},
		{"GET", "/top", "bob", "", "", nil, 200},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		h := tt.header
		if tt.as != "" {
			h = flixtest.As(t, tt.as)
		}
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
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
			t.Errorf("%s %s as %q %q: %d %s; want %d", tt.method, tt.path, tt.as, tt.header, resp.StatusCode, b, tt.want)
		}
	}
}

// The OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	srv := newTestServer(t)
	if r := do(t, srv, "GET", "/openapi.json", "", ""); r.Status != 200 || !strings.Contains(r.Body, `"openapi": "3.1.0"`) {
		t.Fatalf("GET /openapi.json: %d %s", r.Status, r.Body)
	}
}
