// Command ratings is the flix ratings service: a profile's rating (1 to 5)
// of a title, and a title's average. Ratings live in SQLite, in one file
// shared by all instances of the service ($SHOAL_DATA_DIR/ratings.db,
// default .shoal/data), in WAL mode so that readers never wait for writers.
//
//	PUT /ratings/{profile}/{title}   body {"score": 1..5}; needs an Idempotency-Key header
//	GET /ratings/{profile}/{title}   the rating; 404 JSON if there is none
//	GET /titles/{title}/average      {"title": ..., "average": ..., "count": ...}
//
// A write applies once per Idempotency-Key, through the SDK's idempotency
// package: the key and its answer are stored in the same transaction as the
// rating, and a retry with the key (on any instance, also while the first
// attempt is still running) gets the original answer, so callers (and the
// client's failover and hedging) may repeat writes freely. Keys are kept for
// 24 hours; every instance purges expired ones.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
)

// Where the database lives.
const (
	envDataDir     = "SHOAL_DATA_DIR"
	defaultDataDir = ".shoal/data"
	dbFile         = "ratings.db"
)

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "ratings")) // like the SDK's logs
	dir := os.Getenv(envDataDir)
	if dir == "" {
		dir = defaultDataDir
	}
	// Other instances may hold the file's write lock while starting too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := openStore(ctx, filepath.Join(dir, dbFile), idempotency.Config{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratings:", err)
		os.Exit(1)
	}
	// The purge loop lives as long as the process: Main ends it with
	// os.Exit after the drain.
	go st.keys.Run(context.Background())
	shoal.Main(shoal.Config{Name: "ratings"}, newHandler(st))
}
