package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

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
	testProfiles = flixtest.Profiles
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

// newTestPlayback serves playback on a database of the dialect, calling
// the given services by name (for lookups and deliveries alike).
func newTestPlayback(tb testing.TB, dialect flixtest.Dialect, services map[string]http.Handler) *testPlayback {
	tb.Helper()
	db := dialect.Open(tb, "playback")
	c := flixtest.Client(tb, client.Config{}, services)
	outbox := events.NewOutbox(db, events.OutboxConfig{Subscribers: subscribers, Client: c, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	var sess *sessions
	flixtest.Setup(tb, func(ctx context.Context) (err error) {
		if sess, err = openSessions(ctx, db); err != nil {
			return err
		}
		tb.Cleanup(func() { sess.Close() })
		return outbox.Migrate(ctx)
	})
	srv := flixtest.Serve(tb, (&playback{sessions: sess, client: c, outbox: outbox}).routes)
	return &testPlayback{srv: srv, db: db, outbox: outbox}
}

// start starts a session, signed in as profile, and returns it.
func start(tb testing.TB, srv *httptest.Server, profile string, title int) Session {
	tb.Helper()
	r := flixtest.Do(tb, srv, "POST", "/sessions", fmt.Sprintf(`{"profile":%q,"title":%d}`, profile, title), flixtest.As(tb, profile)...)
	var s Session
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil || r.Status != http.StatusCreated {
		tb.Fatalf("starting a session of %s on %d: %d %s", profile, title, r.Status, r.Body)
	}
	return s
}

func key(k string) []string { return []string{idempotency.KeyHeader, k} }

// as is the headers of a request signed in as profile, plus header.
func as(tb testing.TB, profile string, header []string) []string {
	return append(flixtest.As(tb, profile), header...)
}
