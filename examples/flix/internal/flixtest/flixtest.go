// Package flixtest holds what the flix services' tests share: their
// databases, requests to a service under test and its JSON answers, events
// delivered as an outbox delivers them, and fake dependencies called by
// name through the SDK's client, and signed-in profiles: the user tokens
// of a test system, verified as a service verifies them.
package flixtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/identity/identitytest"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

// Dialect is a database engine flix services run on.
type Dialect struct {
	Name string
	open func(ctx context.Context, tb testing.TB, service string) (*store.DB, error)
}

// Dialects are SQLite, in a temporary folder, and PostgreSQL, where it is
// installed (storetest.Postgres skips the test otherwise). A package whose
// tests use PostgreSQL calls storetest.Main from its TestMain.
var Dialects = []Dialect{
	{"sqlite", func(ctx context.Context, tb testing.TB, service string) (*store.DB, error) {
		return store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), service+".db"))
	}},
	{"postgres", func(ctx context.Context, tb testing.TB, service string) (*store.DB, error) {
		return store.OpenPostgres(ctx, storetest.Postgres(tb))
	}},
}

// SetupTimeout bounds a test's database setup, as a service's start does.
const SetupTimeout = 30 * time.Second

// Open opens a fresh database of service for tb, closed when tb ends.
func (d Dialect) Open(tb testing.TB, service string) *store.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), SetupTimeout)
	defer cancel()
	db, err := d.open(ctx, tb, service)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Setup runs f, a test's setup (migrations, a dataset), with a context
// bounded by SetupTimeout, as a service's Prepare is; an error fails tb.
func Setup(tb testing.TB, f func(ctx context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), SetupTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.Fatal(err)
	}
}

// SQLite opens a fresh SQLite database of service for tb.
func SQLite(tb testing.TB, service string) *store.DB {
	tb.Helper()
	return Dialects[0].Open(tb, service)
}

// Response is a service's answer, its body read.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends a request to the service at srv with the given headers (name,
// value pairs) and checks that the answer is JSON, as every flix answer
// is.
func Do(tb testing.TB, srv *httptest.Server, method, path, body string, header ...string) Response {
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
	return Response{resp.StatusCode, resp.Header, string(b)}
}

// ErrorCode returns the code of a JSON error body.
func ErrorCode(tb testing.TB, body string) string {
	tb.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		tb.Fatalf("not a JSON error: %s", body)
	}
	return e.Error.Code
}

// Deliver POSTs an event to the inbox of the service at url as an outbox
// does, and returns the status. It may be called from any goroutine.
func Deliver(url, topic, id string, payload any) (int, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return 0, err
	}
	return DeliverRaw(url, topic, id, body)
}

// DeliverRaw is Deliver with the payload as it goes on the wire, JSON or
// not.
func DeliverRaw(url, topic, id string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url+events.Path, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(events.HeaderID, id)
	req.Header.Set(events.HeaderTopic, topic)
	req.Header.Set(events.HeaderTime, time.Now().UTC().Format(time.RFC3339Nano))
	req.Header.Set("Idempotency-Key", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// MustDeliver is Deliver for the test's goroutine: an error fails tb.
func MustDeliver(tb testing.TB, url, topic, id string, payload any) int {
	tb.Helper()
	code, err := Deliver(url, topic, id, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// Serve serves the routes register puts on a new Router, behind Verify,
// on a loopback port, until tb ends.
func Serve(tb testing.TB, register func(rt *shoal.Router)) *httptest.Server {
	tb.Helper()
	var rt shoal.Router
	register(&rt)
	srv := httptest.NewServer(Verify(tb, &rt))
	tb.Cleanup(srv.Close)
	return srv
}

// users is the tests' own system ("flix", its gateway "gateway"), made
// once per test binary: its tokens are what Verify accepts.
var users = sync.OnceValues(func() (*identitytest.Users, error) { return identitytest.NewUsers("flix", "gateway") })

func testUsers(tb testing.TB) *identitytest.Users {
	tb.Helper()
	u, err := users()
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Token returns a user token for the profile id, signed in, as the gateway
// mints it once it has verified the profile's sign-in token.
func Token(tb testing.TB, id string) string {
	tb.Helper()
	tok, err := testUsers(tb).Token(id, profile.SignIn)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// As returns the header (name and value, for Do) of a request made for
// the profile id, signed in.
func As(tb testing.TB, id string) []string {
	tb.Helper()
	return []string{identity.UserTokenHeader, Token(tb, id)}
}

// Verify returns h behind the check a flix service's identity.Guard makes
// of user tokens, without the mutual TLS around it: a request with a user
// token reaches h with its user (identity.UserFrom) if the token is valid,
// and is answered 401 if not; a request without one reaches h for no user,
// as a call another service makes on its own behalf does.
func Verify(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	guarded := testUsers(tb).Guard("flix-test").Wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header[identity.UserTokenHeader] != nil {
			guarded.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// FuzzInbox checks a service's handling of a topic's payloads, as an
// outbox delivers them, against the contract every flix subscriber keeps:
// a payload that is not JSON is refused (400), and any JSON payload is
// consumed (204: applied, or dropped if it is no event of the topic),
// never answered 500, which would have the outbox deliver it again and
// again. After each delivery, check (if not nil) says whether the service
// still works. The seeds are the topic's real payloads and their
// neighbours; go test runs them, go test -fuzz explores.
func FuzzInbox(f *testing.F, url, topic string, seeds []string, check func(t *testing.T)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, payload []byte) {
		id := fmt.Sprintf("fuzz-%d-%d", time.Now().UnixNano(), seq.Add(1))
		code, err := DeliverRaw(url, topic, id, payload)
		if err != nil {
			t.Fatal(err)
		}
		shown := payload[:min(len(payload), 200)]
		switch {
		case !json.Valid(payload) && code != http.StatusBadRequest:
			t.Fatalf("payload %q (%d bytes) is not JSON: %d, want 400", shown, len(payload), code)
		case json.Valid(payload) && len(payload) <= events.MaxPayload && code != http.StatusNoContent:
			t.Fatalf("payload %q (%d bytes): %d, want 204 (applied, or dropped)", shown, len(payload), code)
		}
		if check != nil {
			check(t)
		}
	})
}
