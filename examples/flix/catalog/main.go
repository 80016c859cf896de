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
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/telemetry"
)

func main() {
	c := &catalog{}
	flag.DurationVar(&c.refreshEvery, "refresh", defaultRefresh, "how often the titles are checked for additions by other instances")
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "catalog"}, &rt)
	c.log = svc.Logger()
	svc.Prepare(func(ctx context.Context) (err error) {
		if c.db, err = store.Open(ctx, "catalog"); err != nil {
			return err
		}
		if c.keys, err = idempotency.New(c.db, idempotency.Config{Logger: c.log}); err != nil {
			return err
		}
		metrics, err := telemetry.NewEventMetrics(svc.Metrics().Registry())
		if err != nil {
			return err
		}
		// Events leave through the service's client.
		c.outbox = events.NewOutbox(c.db, events.OutboxConfig{
			Subscribers: map[string][]string{topicTitles: {"search"}},
			Client:      svc.Client(),
			// Search applies events one transaction at a time (SQLite
			// has one writer): the dataset's 2,400 go no faster with
			// more in flight, and three instances at the default 16
			// each overrun search's admission limit (503s, retried
			// after a backoff).
			Concurrency: 4,
			Logger:      c.log,
			Metrics:     metrics,
		})
		start := time.Now()
		generated, err := c.open(ctx, generate(datasetSeed, datasetSize))
		if err != nil {
			return err
		}
		c.log.Info("catalog: database ready", "dataset_written", generated, "took_ms", time.Since(start).Milliseconds())
		c.routes(&rt)
		svc.Go("outbox", c.outbox.Run)
		svc.Go("idempotency keys purge", c.keys.Run)
		return nil
	})
	svc.Main()
}
