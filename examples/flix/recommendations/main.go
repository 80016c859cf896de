// Command recommendations is the flix recommendations service: titles a
// profile may like, from what it watched and what it rated well.
//
//	GET  /recommendations/{profile}?limit=10   {"profile", "picks": [{"title", "name", "reason"}], "fallback"}
//	POST /_events                              playback's "progress" events (events.Inbox; not for the gateway)
//	GET  /openapi.json                         this API, as OpenAPI 3.1
//
// It keeps, in its own database (store.Open: SQLite under
// $SHOAL_DATA_DIR, or PostgreSQL at $SHOAL_DATABASE_URL), the titles each
// profile watched, from playback's "progress" events, received through the
// SDK's inbox: a recommendation reflects a progress report as soon as it
// is delivered. Picks share genres with the titles the profile watched
// (the latest first) and rated 4 or 5 (GET http://ratings/ratings/{p}),
// leave out what it watched or rated, and only offer titles of the
// maturities the profiles service says the profile may watch (GET
// http://profiles/profiles/{p}, cached); each names the title it comes
// from ("because you watched …"). It holds a copy of the catalog's titles
// (GET http://catalog/titles, refreshed every minute) and of the popular
// titles (GET http://ratings/top, every 30 seconds), so a recommendation
// costs one call (ratings) and at times another (profiles).
//
// With nothing to go on (a new profile), or its dependencies failing, it
// answers popular titles, or else the newest, with "fallback": true.
//
// Profile routes follow the flix rule: they answer only the profile
// signed in for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
package main

import (
	"context"
	"flag"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/store"
)

// How long the copies of other services' data are kept before they are
// fetched again.
const (
	catalogRefresh = time.Minute
	popularTTL     = 30 * time.Second
)

func main() {
	rc := &recommender{}
	flag.DurationVar(&rc.ratingsBudget, "ratings-budget", defaultRatingsBudget, "time allowed for the ratings calls (within the request's deadline)")
	flag.DurationVar(&rc.profilesBudget, "profiles-budget", defaultProfilesBudget, "time allowed for the profiles call (within the request's deadline)")
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "recommendations", Calls: []string{"catalog", "ratings", "profiles"}}, &rt)
	rc.log, rc.client = svc.Logger(), svc.Client()
	rc.catalog = &catalogCopy{client: rc.client, log: rc.log, refreshEvery: catalogRefresh}
	rc.popular = &popular{client: rc.client, ttl: popularTTL}
	rc.rights = &profile.Cache{Client: rc.client}
	svc.Prepare(func(ctx context.Context) error {
		db, err := store.Open(ctx, "recommendations")
		if err != nil {
			return err
		}
		if rc.watched, rc.inbox, err = openWatched(ctx, db); err != nil {
			return err
		}
		rc.routes(&rt)
		return nil
	})
	svc.Go("catalog copy", rc.catalog.Run)
	svc.Main()
}
