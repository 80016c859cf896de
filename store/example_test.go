package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/shoal-dev/shoal/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.Setenv(store.EnvDataDir, dir) // a service would use the default, or its supervisor's setting
	defer os.Unsetenv(store.EnvDataDir)

	ctx := context.Background()
	db, err := store.Open(ctx, "ratings") // <dir>/ratings.db
	if err != nil {
		panic(err)
	}
	defer db.Close()
	err = db.Migrate(ctx, "ratings", []store.Migration{
		{SQL: `CREATE TABLE ratings (
			profile    TEXT    NOT NULL,
			title      BIGINT  NOT NULL,
			score      INTEGER NOT NULL,
			updated_at BIGINT  NOT NULL,
			PRIMARY KEY (profile, title))`},
		{SQL: `CREATE INDEX ratings_by_title ON ratings (title)`},
	})
	if err != nil {
		panic(err)
	}

	rate := func(profile string, title int64, score int) error {
		return db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO ratings (profile, title, score, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (profile, title) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at`,
				profile, title, score, time.Now().UnixMilli())
			return err
		})
	}
	for _, r := range []struct {
		profile string
		score   int
	}{{"ann", 4}, {"bob", 5}, {"ann", 2}} {
		if err := rate(r.profile, 42, r.score); err != nil {
			panic(err)
		}
	}
	var n int
	var avg float64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), AVG(score) FROM ratings WHERE title = $1`, 42).Scan(&n, &avg); err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d ratings, average %.1f\n", db.Dialect, n, avg)
	// Output: sqlite: 2 ratings, average 3.5
}
