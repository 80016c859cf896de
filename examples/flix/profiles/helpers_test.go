package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// The dev key pair, as the gateway will read its public half.
const (
	testKey    = "../keys/jwt-dev.key"
	testPubKey = "../keys/jwt-dev.pub"
)

// dialects opens a fresh database of each engine for tb: SQLite in a
// temporary folder, and PostgreSQL where it is installed.
var dialects = []struct {
	name string
	open func(tb testing.TB) *store.DB
}{
	{"sqlite", func(tb testing.TB) *store.DB {
		return openDB(tb, func(ctx context.Context) (*store.DB, error) {
			return store.OpenSQLite(ctx, filepath.Join(tb.TempDir(), "profiles.db"))
		})
	}},
	{"postgres", func(tb testing.TB) *store.DB {
		dsn := storetest.Postgres(tb)
		return openDB(tb, func(ctx context.Context) (*store.DB, error) { return store.OpenPostgres(ctx, dsn) })
	}},
}

func openDB(tb testing.TB, open func(context.Context) (*store.DB, error)) *store.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := open(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func openTestDirectory(tb testing.TB, db *store.DB) *directory {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := openDirectory(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// newTestServer serves the profiles API over a fresh SQLite database.
func newTestServer(tb testing.TB) (*httptest.Server, *directory) {
	tb.Helper()
	d := openTestDirectory(tb, dialects[0].open(tb))
	tokens, err := loadIssuer(testKey)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := newHandler(d, tokens)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv, d
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

// errorCode returns the code of a JSON error body.
func errorCode(tb testing.TB, body string) string {
	tb.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		tb.Fatalf("not a JSON error: %s", body)
	}
	return e.Error.Code
}
