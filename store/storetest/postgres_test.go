package storetest_test

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// TestPostgres: each call gives an empty database of its own, on one
// server.
func TestPostgres(t *testing.T) {
	a, b := storetest.Postgres(t), storetest.Postgres(t)
	if a == b {
		t.Fatalf("the same database twice: %s", a)
	}
	for _, dsn := range []string{a, b} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE t (id INTEGER)`); err != nil {
			t.Fatalf("%s: %v", dsn, err) // fails if the databases are shared
		}
	}
}

// A test of code on PostgreSQL: storetest.Main in TestMain shares one
// server among the package's tests; each gets a database of its own.
func ExamplePostgres() {
	// func TestMain(m *testing.M) { storetest.Main(m) }
	//
	// func TestOrders(t *testing.T) {
	// 	db, err := store.OpenPostgres(t.Context(), storetest.Postgres(t))
	// 	if err != nil {
	// 		t.Fatal(err)
	// 	}
	// 	defer db.Close()
	// 	…
	// }
}
