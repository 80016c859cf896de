package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// The dev key pair, as the gateway will read its public half.
const (
	testKey    = "../keys/jwt-dev.key"
	testPubKey = "../keys/jwt-dev.pub"
)

func openTestDirectory(tb testing.TB, db *store.DB) *directory {
	tb.Helper()
	var d *directory
	flixtest.Setup(tb, func(ctx context.Context) (err error) {
		d, err = openDirectory(ctx, db)
		return err
	})
	tb.Cleanup(func() { d.Close() })
	return d
}

// newTestServer serves the profiles API over a fresh SQLite database.
func newTestServer(tb testing.TB) (*httptest.Server, *directory) {
	tb.Helper()
	d := openTestDirectory(tb, flixtest.SQLite(tb, "profiles"))
	return serveDirectory(tb, d), d
}

// serveDirectory serves the profiles API over d, signing with the
// development key.
func serveDirectory(tb testing.TB, d *directory) *httptest.Server {
	tb.Helper()
	tokens, err := loadIssuer(testKey, true, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return flixtest.Serve(tb, func(rt *shoal.Router) {
		if err := routes(rt, d, tokens); err != nil {
			tb.Fatal(err)
		}
	})
}
