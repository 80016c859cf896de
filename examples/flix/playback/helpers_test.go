package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// byName is an http.RoundTripper that sends http://<service>/... to the
// base URL the map gives the service, as the SDK's client sends it to an
// instance; a service missing from the map has no instance.
type byName map[string]string

func (m byName) RoundTrip(r *http.Request) (*http.Response, error) {
	base, ok := m[r.URL.Host]
	if !ok {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("service %q: %w", r.URL.Host, client.ErrNoInstances)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = u.Scheme, u.Host, ""
	return http.DefaultTransport.RoundTrip(out)
}

// upstream stands for a service already serving at a base URL.
type upstream string

func (upstream) ServeHTTP(http.ResponseWriter, *http.Request) { panic("upstream is not served") }

// serve starts fake services and returns the client that reaches them by
// name; a nil handler is a service with no instance.
func serve(tb testing.TB, services map[string]http.Handler) *http.Client {
	tb.Helper()
	m := byName{}
	for name, h := range services {
		if u, ok := h.(upstream); ok {
			m[name] = string(u)
			continue
		}
		if h == nil {
			continue
		}
		srv := httptest.NewServer(h)
		tb.Cleanup(srv.Close)
		m[name] = srv.URL
	}
	return &http.Client{Transport: m}
}

// fakeProfiles serves GET /profiles/{id} from a map of id to maturity.
func fakeProfiles(maturity map[string]string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /profiles/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		m, ok := maturity[id]
		// Playback forwards no subject on its internal calls.
		if !ok || r.Header.Get(SubjectHeader) != "" {
			http.Error(w, `{"error":{"code":"not_found","message":"no profile"}}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id":%q,"account":1,"name":"Ada","maturity":%q}`, id, m)
	})
	return mux
}

// fakeTitle is what the fake catalog knows of a title.
type fakeTitle struct {
	maturity string // "" leaves the field out
	duration float64
}

// fakeCatalog serves GET /titles/{id}.
func fakeCatalog(titles map[string]fakeTitle) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		t, ok := titles[id]
		if !ok {
			http.Error(w, `{"error":{"code":"not_found","message":"no title"}}`, http.StatusNotFound)
			return
		}
		title := map[string]any{"id": json.Number(id), "name": "Title " + id, "year": 2020, "genres": []string{"drama"},
			"kind": "movie", "duration_s": t.duration, "added_at": 1}
		if t.maturity != "" {
			title["maturity"] = t.maturity
		}
		json.NewEncoder(w).Encode(title)
	})
	return mux
}

var (
	testProfiles = fakeProfiles(map[string]string{"p0001": "adult", "p0010": "kids", "p0020": "teen"})
	testCatalog  = fakeCatalog(map[string]fakeTitle{
		"1": {"adult", 5400},
		"2": {"all", 1500},
		"3": {"teen", 2700},
		"4": {"", 600},
		"5": {"all", 0}, // the catalog knows no duration
	})
	failing = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"internal","message":"boom"}}`, http.StatusInternalServerError)
	})
	accept = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
)

// testPlayback is a playback service over a fresh database, with its
// outbox (not running unless the test runs it).
type testPlayback struct {
	srv    *httptest.Server
	db     *store.DB
	outbox *events.Outbox
}

// dialects opens a fresh database of each engine for tb: SQLite in a
// temporary folder, and PostgreSQL where it is installed.
var dialects = []struct {
	name string
	open func(ctx context.Context, tb testing.TB) (*store.DB, error)
}{
	{"sqlite", func(ctx context.Context, tb testing.TB) (*store.DB, error) {
		return store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "playback.db"))
	}},
	{"postgres", func(ctx context.Context, tb testing.TB) (*store.DB, error) {
		return store.OpenPostgres(ctx, storetest.Postgres(tb))
	}},
}

// newTestPlayback serves playback on a database of the dialect, calling
// the given services by name (for lookups and deliveries alike).
func newTestPlayback(tb testing.TB, dialect int, services map[string]http.Handler) *testPlayback {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := dialects[dialect].open(ctx, tb)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	sess, err := openSessions(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Close() })
	c := serve(tb, services)
	outbox := events.NewOutbox(db, events.OutboxConfig{Subscribers: subscribers, Client: c, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err := outbox.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(&playback{sessions: sess, client: c, outbox: outbox}))
	tb.Cleanup(srv.Close)
	return &testPlayback{srv: srv, db: db, outbox: outbox}
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the given headers (name, value pairs) and
// checks that the answer is JSON.
func do(tb testing.TB, srv *httptest.Server, method, path, body string, header ...string) response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// start starts a session and returns it.
func start(tb testing.TB, srv *httptest.Server, profile string, title int) Session {
	tb.Helper()
	r := do(tb, srv, "POST", "/sessions", fmt.Sprintf(`{"profile":%q,"title":%d}`, profile, title))
	var s Session
	if err := json.Unmarshal([]byte(r.body), &s); err != nil || r.status != http.StatusCreated {
		tb.Fatalf("starting a session of %s on %d: %d %s", profile, title, r.status, r.body)
	}
	return s
}

func key(k string) []string { return []string{idempotency.KeyHeader, k} }

func errorCode(tb testing.TB, body string) string {
	tb.Helper()
	var e struct{ Error struct{ Code string } }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		tb.Fatalf("not a JSON error: %s", body)
	}
	return e.Error.Code
}
