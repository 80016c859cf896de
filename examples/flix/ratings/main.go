// Command ratings is the flix ratings service: a profile's rating (1 to 5)
// of a title, and a title's average. Ratings live in SQLite, in one file
// shared by all instances of the service ($SHOAL_DATA_DIR/ratings.db,
// default .shoal/data), in WAL mode so that readers never wait for writers.
//
//	PUT /ratings/{profile}/{title}   body {"score": 1..5}; needs an Idempotency-Key header
//	GET /ratings/{profile}/{title}   the rating; 404 JSON if there is none
//	GET /titles/{title}/average      {"title": ..., "average": ..., "count": ...}
//
// A write applies once per Idempotency-Key: the key is stored in the same
// transaction as the rating, and a retry with the key gets the original
// answer, so callers (and the client's failover) may repeat writes freely.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal"
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
	st, err := openStore(ctx, filepath.Join(dir, dbFile))
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratings:", err)
		os.Exit(1)
	}
	shoal.Main(shoal.Config{Name: "ratings"}, newHandler(st))
}
