// Command ratings is the flix ratings service: a profile's rating (1 to 5)
// of a title, a title's average, and the most popular titles. Ratings live
// in the service's own database (store.Open: SQLite under $SHOAL_DATA_DIR,
// default .shoal/data, in WAL mode so that readers never wait for writers;
// or PostgreSQL at $SHOAL_DATABASE_URL), shared by all instances.
//
//	PUT /ratings/{profile}/{title}   body {"score": 1..5}; needs an Idempotency-Key header
//	GET /ratings/{profile}/{title}   the rating; 404 JSON if there is none
//	GET /ratings/{profile}           {"profile", "ratings": [...]}, the latest first
//	GET /titles/{title}/average      {"title", "average", "count"}
//	GET /top?limit=20                {"titles": [{"title", "average", "count"}]}, most popular first
//	GET /openapi.json                this API, as OpenAPI 3.1
//
// Profile routes follow the flix rule: they answer only the profile
// signed in for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
//
// A write applies once per Idempotency-Key, through the SDK's idempotency
// package: the key and its answer are stored in the same transaction as the
// rating, and a retry with the key (on any instance, also while the first
// attempt is still running) gets the original answer, so callers (and the
// client's failover and hedging) may repeat writes freely. Keys are kept for
// 24 hours; every instance purges expired ones.
//
// At first start one instance writes the dataset: each of the profiles
// p0001..p0500 rates 100 titles of the catalog's dataset, 50,000 ratings
// in one transaction. Popularity (GET /top) is a Bayesian average over the
// titles with at least 10 ratings, recomputed at most every 5 seconds.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

func main() {
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "ratings"}, &rt)
	log := svc.Logger()
	svc.Prepare(func(ctx context.Context) error {
		db, err := store.Open(ctx, "ratings")
		if err != nil {
			return err
		}
		st, err := openRatings(ctx, db, idempotency.Config{Logger: log})
		if err != nil {
			return err
		}
		start := time.Now()
		generated, err := st.ensureDataset(ctx, generate(datasetSeed))
		if err != nil {
			return fmt.Errorf("writing the dataset: %w", err)
		}
		log.Info("ratings: database ready", "dataset_written", generated, "took_ms", time.Since(start).Milliseconds())
		st.routes(&rt)
		svc.Go("idempotency keys purge", st.keys.Run)
		return nil
	})
	svc.Main()
}
