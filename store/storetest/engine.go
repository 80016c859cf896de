package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/store"
)

// Engine makes databases of one dialect, for tests that run against each.
type Engine struct {
	Name string
	// Place makes a new empty database and says where it is.
	Place func(tb testing.TB) string
	// Open opens the database at where; each call is a separate pool, as
	// another process would have.
	Open func(ctx context.Context, where string) (*store.DB, error)
}

// SQLite makes SQLite files in the test's temporary folder.
var SQLite = Engine{
	Name:  "sqlite",
	Place: func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "test.db") },
	Open:  store.OpenSQLite,
}

// PostgreSQL makes databases on a throwaway server (see Postgres).
var PostgreSQL = Engine{
	Name:  "postgres",
	Place: Postgres,
	Open:  store.OpenPostgres,
}

// ForEach runs f as a subtest per engine: SQLite, then PostgreSQL.
func ForEach(t *testing.T, f func(t *testing.T, e Engine)) {
	for _, e := range []Engine{SQLite, PostgreSQL} {
		t.Run(e.Name, func(t *testing.T) { f(t, e) })
	}
}

// MustOpen opens the database at where, failing the test if it cannot,
// and closes it when the test ends.
func (e Engine) MustOpen(tb testing.TB, where string) *store.DB {
	tb.Helper()
	db, err := e.Open(context.Background(), where)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// NewDB places a new empty database and opens it, as MustOpen does.
func (e Engine) NewDB(tb testing.TB) *store.DB {
	tb.Helper()
	return e.MustOpen(tb, e.Place(tb))
}
