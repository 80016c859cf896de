// Command catalog is the flix catalog service: titles (movies and series),
// in the service's own database (store.Open: SQLite under $SHOAL_DATA_DIR,
// or PostgreSQL at $SHOAL_DATABASE_URL), shared by its instances.
//
//	GET  /titles?genre=&order=id|new&limit=20&offset=0   a page of titles, and how many in all
//	GET  /titles?ids=1,2,3                               those titles, in that order
//	GET  /titles/{id}                                    one title; 404 JSON for an unknown id
//	GET  /titles/{id}/episodes                           a series' episodes, season by season
//	GET  /genres                                         the genres, with their number of titles
//	POST /titles                                         add a title (body: a Title without id); needs an Idempotency-Key
//	GET  /openapi.json                                   this API, as OpenAPI 3.1
//
// At first start one instance writes the dataset (2,400 titles generated
// from a fixed seed) and publishes a "titles" event per title, in the same
// transaction, for search to index; every title added later publishes one
// too. Events leave through the SDK's outbox (events.Outbox), which every
// instance runs.
//
// Reads come from an in-memory snapshot of the titles (they never change
// once added), refreshed from the database at most once a second, so a
// title by id costs a binary search; a title another instance added in
// that second is looked up in the database.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/telemetry"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "catalog") // like the SDK's logs
	slog.SetDefault(log)
	c := &catalog{log: log}
	flag.DurationVar(&c.refreshEvery, "refresh", defaultRefresh, "how often the titles are checked for additions by other instances")

	// Other instances may hold the database's write lock while starting too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	db, err := store.Open(ctx, "catalog")
	if err != nil {
		fail(err)
	}
	c.db = db
	if c.keys, err = idempotency.New(db, idempotency.Config{Logger: log}); err != nil {
		fail(err)
	}
	svc := shoal.Setup(shoal.Config{Name: "catalog"}, newHandler(c))
	metrics, err := telemetry.NewEventMetrics(svc.Metrics().Registry())
	if err != nil {
		fail(err)
	}
	// The outbox delivers through the service's client; the handler uses
	// it only once Main serves.
	c.outbox = events.NewOutbox(db, events.OutboxConfig{
		Subscribers: map[string][]string{topicTitles: {"search"}},
		Client:      svc.Client(),
		// Search applies events one transaction at a time (SQLite has
		// one writer): the dataset's 2,400 go no faster with more in
		// flight, and three instances at the default 16 each overrun
		// search's admission limit (503s, retried after a backoff).
		Concurrency: 4,
		Logger:      log,
		Metrics:     metrics,
	})
	start := time.Now()
	generated, err := c.open(ctx, generate(datasetSeed, datasetSize))
	cancel()
	if err != nil {
		fail(err)
	}
	log.Info("catalog: database ready", "dataset_written", generated, "took_ms", time.Since(start).Milliseconds())

	// Both loops live as long as the process: Main ends it with os.Exit
	// after the drain.
	go c.outbox.Run(context.Background())
	go c.keys.Run(context.Background())
	svc.Main()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "catalog:", err)
	os.Exit(1)
}
