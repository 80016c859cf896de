// Command search is the flix search service: full-text search over the
// catalog's titles (their names, genres and years).
//
//	GET  /search?q=&limit=10   {"query", "results": [{"id", "name", "year", "genres"}]}, best first
//	POST /_events              the catalog's "titles" events (events.Inbox; not for the gateway)
//	GET  /openapi.json         this API, as OpenAPI 3.1
//
// Search owns a copy of what it needs of every title, fed by the catalog's
// "titles" events (one per title, the dataset's 2,400 at the catalog's
// first start included), which arrive through the SDK's inbox: each event
// is indexed once, in the transaction that records it as received. The
// index is a table of terms (lower-case words) in the service's own
// database (store.Open: SQLite under $SHOAL_DATA_DIR, or PostgreSQL at
// $SHOAL_DATABASE_URL), shared by its instances, so whichever instance an
// event reaches, every instance finds the title.
//
// Every word of a query must match, as a prefix of a word of the title
// ("harb" finds "Harbor"); whole words and words of the name rank higher.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "search") // like the SDK's logs
	slog.SetDefault(log)
	// Other instances may hold the database's write lock while starting too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "search")
	if err != nil {
		fail(err)
	}
	ix := &index{db: db}
	if err := ix.migrate(ctx); err != nil {
		fail(err)
	}
	inbox := events.NewInbox(db)
	if err := inbox.Migrate(ctx); err != nil {
		fail(err)
	}
	inbox.Handle(topicTitles, ix.handleTitle)
	cancel()
	shoal.Main(shoal.Config{Name: "search"}, newHandler(ix, inbox))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "search:", err)
	os.Exit(1)
}
