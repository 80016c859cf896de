package idempotency

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/shoal-dev/shoal/internal/syncbuf"
	"github.com/shoal-dev/shoal/store/storetest"
)

// testHandler answers by path, and counts its runs.
//
//	/ok       200 {"n": <run>}
//	/created  201 text, no Content-Type set
//	/bad      400 JSON error
//	/busy     429
//	/fail     500 on the first run, 200 after
//	/forget   400 after Forget
//	/panic    panics on the first run, 200 after
func testHandler(runs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"n":%d}`, n)
		case "/created":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "created %d", n)
		case "/bad":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"code":"invalid_argument","message":"run %d"}}`, n)
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/fail":
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "ok %d", n)
		case "/forget":
			FromContext(r.Context()).Forget()
			w.WriteHeader(http.StatusBadRequest)
		case "/panic":
			if n == 1 {
				panic("boom")
			}
			fmt.Fprintf(w, "ok %d", n)
		default:
			http.NotFound(w, r)
		}
	})
}

// Subjects, as the gateway sets them.
var (
	ann   = map[string][]string{SubjectHeader: {"ann"}}
	bob   = map[string][]string{SubjectHeader: {"bob"}}
	carol = map[string][]string{SubjectHeader: {"carol"}}
)

type call struct {
	method, path, key, body string
	header                  map[string][]string // extra headers
	wantStatus              int
	wantReplayed            bool
	wantCode                string // JSON error code, if any
	wantBody                string // if not empty
	wantRuns                int64  // handler runs so far
}

func TestMiddleware(t *testing.T) {
	tests := []struct {
		name  string
		calls []call
	}{
		{"replay after success", []call{
			{method: "POST", path: "/ok", key: "k", body: "a", wantStatus: 200, wantBody: `{"n":1}`, wantRuns: 1},
			{method: "POST", path: "/ok", key: "k", body: "a", wantStatus: 200, wantReplayed: true, wantBody: `{"n":1}`, wantRuns: 1},
			{method: "POST", path: "/ok", key: "k", body: "a", wantStatus: 200, wantReplayed: true, wantBody: `{"n":1}`, wantRuns: 1},
			{method: "POST", path: "/ok", key: "k2", body: "a", wantStatus: 200, wantBody: `{"n":2}`, wantRuns: 2},
		}},
		{"sniffed content type is replayed", []call{
			{method: "POST", path: "/created", key: "k", wantStatus: 201, wantBody: "created 1", wantRuns: 1},
			{method: "POST", path: "/created", key: "k", wantStatus: 201, wantReplayed: true, wantBody: "created 1", wantRuns: 1},
		}},
		{"different body", []call{
			{method: "PUT", path: "/ok", key: "k", body: `{"a":1}`, wantStatus: 200, wantRuns: 1},
			{method: "PUT", path: "/ok", key: "k", body: `{"a":2}`, wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 1},
			{method: "PUT", path: "/ok", key: "k", body: `{"a": 1}`, wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 1},
		}},
		{"different method, path or query", []call{
			{method: "PUT", path: "/ok", key: "k", wantStatus: 200, wantRuns: 1},
			{method: "POST", path: "/ok", key: "k", wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 1},
			{method: "PUT", path: "/ok?x=1", key: "k", wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 1},
			{method: "PUT", path: "/created", key: "k", wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 1},
		}},
		{"4xx is recorded", []call{
			{method: "POST", path: "/bad", key: "k", wantStatus: 400, wantCode: "invalid_argument", wantRuns: 1},
			{method: "POST", path: "/bad", key: "k", wantStatus: 400, wantReplayed: true, wantCode: "invalid_argument", wantRuns: 1},
		}},
		{"429 releases", []call{
			{method: "POST", path: "/busy", key: "k", wantStatus: 429, wantRuns: 1},
			{method: "POST", path: "/busy", key: "k", wantStatus: 429, wantRuns: 2},
		}},
		{"5xx releases", []call{
			{method: "POST", path: "/fail", key: "k", wantStatus: 500, wantRuns: 1},
			{method: "POST", path: "/fail", key: "k", wantStatus: 200, wantBody: "ok 2", wantRuns: 2},
			{method: "POST", path: "/fail", key: "k", wantStatus: 200, wantReplayed: true, wantBody: "ok 2", wantRuns: 2},
		}},
		{"panic releases", []call{
			{method: "POST", path: "/panic", key: "k", wantStatus: -1, wantRuns: 1}, // panics
			{method: "POST", path: "/panic", key: "k", wantStatus: 200, wantBody: "ok 2", wantRuns: 2},
			{method: "POST", path: "/panic", key: "k", wantStatus: 200, wantReplayed: true, wantRuns: 2},
		}},
		{"Forget releases", []call{
			{method: "POST", path: "/forget", key: "k", body: "x", wantStatus: 400, wantRuns: 1},
			{method: "POST", path: "/ok", key: "k", body: "fixed", wantStatus: 200, wantRuns: 2},
		}},
		{"no key passes through", []call{
			{method: "POST", path: "/ok", wantStatus: 200, wantRuns: 1},
			{method: "POST", path: "/ok", wantStatus: 200, wantBody: `{"n":2}`, wantRuns: 2},
		}},
		{"safe methods pass through", []call{
			{method: "GET", path: "/ok", key: "k", wantStatus: 200, wantRuns: 1},
			{method: "GET", path: "/ok", key: "k", wantStatus: 200, wantBody: `{"n":2}`, wantRuns: 2},
			{method: "POST", path: "/ok", key: "k", wantStatus: 200, wantBody: `{"n":3}`, wantRuns: 3},
		}},
		{"bad keys", []call{
			{method: "POST", path: "/ok", key: "a b", wantStatus: 400, wantCode: "invalid_argument"},
			{method: "POST", path: "/ok", key: "é", wantStatus: 400, wantCode: "invalid_argument"},
			{method: "POST", path: "/ok", key: strings.Repeat("k", 256), wantStatus: 400, wantCode: "invalid_argument"},
			{method: "POST", path: "/ok", header: map[string][]string{KeyHeader: {""}}, wantStatus: 400, wantCode: "invalid_argument"},
			{method: "POST", path: "/ok", header: map[string][]string{KeyHeader: {"a", "b"}}, wantStatus: 400, wantCode: "invalid_argument"},
			{method: "POST", path: "/ok", key: strings.Repeat("k", 255), wantStatus: 200, wantRuns: 1},
		}},
		{"keys are per subject", []call{
			{method: "POST", path: "/ok", key: "k", body: "a", header: ann, wantStatus: 200, wantBody: `{"n":1}`, wantRuns: 1},
			// Another subject with the same key and request: its own run,
			// not ann's answer.
			{method: "POST", path: "/ok", key: "k", body: "a", header: bob, wantStatus: 200, wantBody: `{"n":2}`, wantRuns: 2},
			{method: "POST", path: "/ok", key: "k", body: "a", header: ann, wantStatus: 200, wantReplayed: true, wantBody: `{"n":1}`, wantRuns: 2},
			{method: "POST", path: "/ok", key: "k", body: "a", header: bob, wantStatus: 200, wantReplayed: true, wantBody: `{"n":2}`, wantRuns: 2},
			{method: "POST", path: "/ok", key: "k", body: "a", wantStatus: 200, wantBody: `{"n":3}`, wantRuns: 3},
			// A key is reused only within a subject: no 422 tells carol
			// that ann used it.
			{method: "POST", path: "/ok", key: "k", body: "b", header: ann, wantStatus: 422, wantCode: "idempotency_key_reused", wantRuns: 3},
			{method: "POST", path: "/ok", key: "k", body: "b", header: carol, wantStatus: 200, wantBody: `{"n":4}`, wantRuns: 4},
		}},
		{"body too large", []call{
			{method: "POST", path: "/ok", key: "k", body: strings.Repeat("x", 65), wantStatus: 413, wantCode: "body_too_large"},
			{method: "POST", path: "/ok", key: "k", body: strings.Repeat("x", 64), wantStatus: 200, wantRuns: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
			s := newStore(t, db, Config{MaxBodyBytes: 64})
			var runs atomic.Int64
			h := s.Middleware(testHandler(&runs))
			for i, c := range tt.calls {
				got, panicked := serveCall(h, c)
				if c.wantStatus == -1 {
					if !panicked {
						t.Fatalf("call %d: did not panic", i)
					}
				} else if panicked || got.status != c.wantStatus || got.replayed != c.wantReplayed {
					t.Fatalf("call %d %s %s: status %d replayed %v panicked %v (%s); want %d replayed %v",
						i, c.method, c.path, got.status, got.replayed, panicked, got.body, c.wantStatus, c.wantReplayed)
				}
				if c.wantBody != "" && got.body != c.wantBody {
					t.Errorf("call %d: body %q, want %q", i, got.body, c.wantBody)
				}
				if c.wantCode != "" {
					var e struct {
						Error struct{ Code, Message string }
					}
					if err := json.Unmarshal([]byte(got.body), &e); err != nil || e.Error.Code != c.wantCode || got.ct != "application/json" {
						t.Errorf("call %d: %s %q (%v); want JSON error %q", i, got.ct, got.body, err, c.wantCode)
					}
				}
				if n := runs.Load(); n != c.wantRuns {
					t.Errorf("call %d: handler ran %d times, want %d", i, n, c.wantRuns)
				}
			}
		})
	}
}

// Replays carry what the first answer carried.
func TestReplaySameAnswer(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	var runs atomic.Int64
	h := newStore(t, db, Config{}).Middleware(testHandler(&runs))
	for _, path := range []string{"/ok", "/created", "/bad"} {
		first := serve(h, context.Background(), "POST", path, "k"+path, "body")
		again := serve(h, context.Background(), "POST", path, "k"+path, "body")
		if !again.replayed || first.replayed {
			t.Errorf("%s: replayed %v then %v", path, first.replayed, again.replayed)
		}
		again.replayed = false
		if first != again || first.ct == "" {
			t.Errorf("%s: first %+v, replay %+v", path, first, again)
		}
	}
	req := httptest.NewRequest("POST", "/ok", strings.NewReader("body"))
	req.Header.Set(KeyHeader, "k/ok")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Content-Type-Options"); rec.Header().Get(ReplayedHeader) != "true" || got != "nosniff" {
		t.Errorf("replay: X-Content-Type-Options %q, want nosniff", got)
	}
}

func serveCall(h http.Handler, c call) (got answer, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	hh := h
	if c.header != nil {
		hh = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range c.header {
				r.Header[k] = v
			}
			h.ServeHTTP(w, r)
		})
	}
	return serve(hh, context.Background(), c.method, c.path, c.key, c.body), false
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		key  string
		want string // in the error; "" for valid
	}{
		{"a", ""},
		{"8e03978e-40d5-43e8-bc93-6894a57f9324", ""},
		{`"quoted"`, ""},
		{strings.Repeat("~", MaxKeyLen), ""},
		{"", "empty"},
		{strings.Repeat("a", MaxKeyLen+1), "256 bytes"},
		{"a b", `"a b"`},
		{"tab\t", "printable"},
		{"\x7f", "printable"},
		{"ключ", "printable"},
	}
	for _, tt := range tests {
		err := CheckKey(tt.key)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckKey(%q) = %v, want %q", tt.key, err, tt.want)
		}
	}
}

func FuzzCheckKey(f *testing.F) {
	for _, k := range []string{"", "a", "a b", "ключ", strings.Repeat("x", 256)} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		valid := len(k) >= 1 && len(k) <= MaxKeyLen
		for _, r := range k {
			valid = valid && r > ' ' && r < 0x7f
		}
		if err := CheckKey(k); (err == nil) != valid {
			t.Fatalf("CheckKey(%q) = %v, want valid=%v", k, err, valid)
		}
		if err := CheckKey(k); err != nil && !utf8.ValidString(err.Error()) {
			t.Fatalf("error for %q is not UTF-8: %q", k, err)
		}
	})
}

// Different requests never share a fingerprint, wherever the bytes move
// between method, path and body; the same request always does.
func FuzzFingerprint(f *testing.F) {
	f.Add("PUT", "/a", []byte("b"), "PUT", "/ab", []byte(""))
	f.Add("POST", "/x?y=1", []byte("{}"), "POST", "/x", []byte("?y=1{}"))
	f.Fuzz(func(t *testing.T, m1, p1 string, b1 []byte, m2, p2 string, b2 []byte) {
		same := m1 == m2 && p1 == p2 && string(b1) == string(b2)
		f1, f2 := Fingerprint(m1, p1, b1), Fingerprint(m2, p2, b2)
		if (f1 == f2) != same {
			t.Fatalf("(%q %q %q) and (%q %q %q): fingerprints equal %v", m1, p1, b1, m2, p2, b2, f1 == f2)
		}
		if len(f1) != 64 {
			t.Fatalf("fingerprint %q: want 64 hex digits", f1)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for valid
	}{
		{"zero", Config{}, ""},
		{"defaults", DefaultConfig(), ""},
		{"short ttl takes a short lease", Config{TTL: 10 * 1e9}, ""},
		{"negative ttl", Config{TTL: -1}, "ttl -1ns"},
		{"negative lease", Config{Lease: -5e9}, "lease -5s"},
		{"lease over ttl", Config{TTL: 60e9, Lease: 120e9}, "lease 2m0s is longer than ttl 1m0s"},
		{"negative body", Config{MaxBodyBytes: -1}, "max_body_bytes -1"},
		{"negative purge", Config{PurgeInterval: -1e9}, "purge_interval -1s"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil db) succeeded")
	}
}

// A claim that fails because its caller left (a hedge that lost, a client
// that hung up) is logged at debug level, not as an error of the store; one
// that fails while the caller waits is an error.
func TestClaimFailureLevel(t *testing.T) {
	var logs syncbuf.Buffer
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	left, cancel := context.WithCancel(context.Background())
	cancel()
	if a := serve(h, left, "POST", "/ok", "k1", ""); a.status != http.StatusServiceUnavailable {
		t.Fatalf("caller gone: status %d, want 503", a.status)
	}
	if got := logs.String(); !strings.Contains(got, `"level":"DEBUG","msg":"idempotency: claiming a key"`) {
		t.Errorf("caller gone: logged\n%s\nwant the failed claim at DEBUG", got)
	}

	db.Close() // the store fails while the caller waits
	if a := serve(h, context.Background(), "POST", "/ok", "k2", ""); a.status != http.StatusServiceUnavailable {
		t.Fatalf("store closed: status %d, want 503", a.status)
	}
	if got := logs.String(); !strings.Contains(got, `"level":"ERROR","msg":"idempotency: claiming a key"`) {
		t.Errorf("store closed: logged\n%s\nwant the failed claim at ERROR", got)
	}
}
