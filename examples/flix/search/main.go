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

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/store"
)

func main() {
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "search"}, &rt)
	svc.Prepare(func(ctx context.Context) error {
		db, err := store.Open(ctx, "search")
		if err != nil {
			return err
		}
		ix, inbox, err := openIndex(ctx, db)
		if err != nil {
			return err
		}
		routes(&rt, ix, inbox)
		return nil
	})
	svc.Main()
}
