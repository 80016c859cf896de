// Command api is the flix edge API, the one clients call (through the
// gateway). It composes the single-purpose services:
//
//	GET /titles/{id}   the catalog's title with its average rating
//
// The catalog is required: if it fails, so does the request, with the
// matching status (404 stays 404). Ratings are optional: they get a short
// slice of the request's deadline, and if they cannot answer within it the
// title comes back without a rating, marked "degraded": ["ratings"] — a
// fallback, not an error.
package main

import (
	"flag"
	"log/slog"
	"os"

	"github.com/shoal-dev/shoal"
)

func main() {
	// JSON lines, like the SDK's own logs.
	a := &api{log: slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "api")}
	flag.DurationVar(&a.catalogBudget, "catalog-budget", defaultCatalogBudget, "time allowed for the catalog call (within the request's deadline)")
	flag.DurationVar(&a.ratingsBudget, "ratings-budget", defaultRatingsBudget, "time allowed for the ratings call before answering without a rating")
	svc := shoal.Setup(shoal.Config{Name: "api"}, newHandler(a))
	a.client = svc.Client() // set before Main serves the first request
	svc.Main()
}
