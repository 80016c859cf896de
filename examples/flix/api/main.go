// Command api is the flix edge API, the one clients call (through the
// gateway). It composes the single-purpose services:
//
//	GET /home            the signed-in profile's home page (401 without one)
//	GET /home/{profile}  a profile's home page: {"profile", "rows": {...}, "degraded": [...]}
//	GET /titles/{id}     the catalog's title with its average rating
//	GET /openapi.json    this API, as OpenAPI 3.1
//
// A home page has four rows: continue_watching (history), recommendations
// (recommendations), top_rated (ratings' popular titles) and new (the
// catalog's newest), each filtered by the profile's maturity rating
// (profiles, cached). The rows are fetched at once, one call each, each
// within its own slice of the page's deadline (1 s, or the request's own
// if sooner); a second call names the titles rows list by id, for those
// not cached yet (titles never change, so the api keeps what it has seen).
// A row that fails is empty and listed in "degraded"; recommendations
// falls back to the popular titles, or else the newest. The page answers
// 200 whenever any row could be fetched, within its deadline.
//
// For GET /titles/{id} the catalog is required: if it fails, so does the
// request, with the matching status (404 stays 404). Ratings are optional:
// they get a short slice of the request's deadline, and if they cannot
// answer within it the title comes back without a rating, marked
// "degraded": ["ratings"] — a fallback, not an error.
//
// Profile routes follow the flix rule: they answer only the profile
// signed in for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
package main

import (
	"flag"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
)

func main() {
	a := &api{}
	flag.DurationVar(&a.catalogBudget, "catalog-budget", defaultCatalogBudget, "time allowed for the catalog call of GET /titles/{id} (within the request's deadline)")
	flag.DurationVar(&a.ratingsBudget, "ratings-budget", defaultRatingsBudget, "time allowed for the ratings call of GET /titles/{id} before answering without a rating")
	flag.DurationVar(&a.homeDeadline, "home-deadline", defaultHomeDeadline, "time within which GET /home answers (the request's own deadline may be shorter)")
	flag.DurationVar(&a.rowBudget, "row-budget", defaultRowBudget, "time allowed for each row's call of GET /home before the row falls back")
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "api", Calls: []string{"catalog", "ratings", "history", "recommendations", "profiles"}}, &rt)
	a.log, a.client = svc.Logger(), svc.Client()
	a.rights = &profile.Cache{Client: a.client}
	a.routes(&rt)
	svc.Main()
}
