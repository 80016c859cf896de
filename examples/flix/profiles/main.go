// Command profiles is the flix accounts and profiles service: who may sign
// in, as which profile, and what each profile may watch. It issues the
// tokens the gateway checks.
//
//	POST /signin         {"email", "password", "profile"} → {"token", "expires_at", "profile"}
//	GET  /profiles/{id}  Profile{id, account, name, maturity, may_watch}
//	GET  /me             the signed-in profile
//	GET  /openapi.json   this API, as OpenAPI 3.1
//
// A token is an ES256 JWT (iss "flix-profiles", aud "flix", sub the
// profile id, iat, exp one hour later, header kid "flix-dev") signed with
// the PEM key at $FLIX_JWT_KEY (default examples/flix/keys/jwt-dev.key,
// relative to the working directory); the gateway verifies it with the
// public half and vouches for the profile to the services with a user
// token of its own (Shoal-User-Token). The key pair in examples/flix/keys
// is published with the code: the service refuses to start with it unless
// SHOAL_DEV=1 (which the repository's shoal.yaml sets), and warns when it
// does.
//
// A wrong email, a wrong password and a profile of another account get the
// same 401, after the same password check. After five failures in a row
// for an email (counted in the database, across instances), it waits a
// second, twice as long after each further failure up to 15 minutes, and
// sign-ins for it get 429 with Retry-After meanwhile (backoff.go).
//
// Profile routes follow the flix rule: they answer only the profile
// signed in for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
//
// Data lives in the service's own database (store.Open: SQLite under
// $SHOAL_DATA_DIR, or PostgreSQL at $SHOAL_DATABASE_URL), shared by all
// instances. At first start one instance writes the dataset: 250 accounts
// user<k>@flix.example, password "flix", each with profiles p<2k-1> and
// p<2k> (p0001..p0500); the second profile of every fifth account is a
// kids profile.
package main

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/store"
)

func main() {
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "profiles"}, &rt)
	svc.Prepare(func(ctx context.Context) error {
		tokens, err := loadIssuer(cmp.Or(os.Getenv(envJWTKey), defaultJWTKey), shoal.DevAllowed(os.Getenv), svc.Logger())
		if err != nil {
			return err
		}
		db, err := store.Open(ctx, "profiles")
		if err != nil {
			return err
		}
		start := time.Now()
		dir, err := openDirectory(ctx, db)
		if err != nil {
			return err
		}
		slog.Info("profiles: database ready", "dataset_written", dir.generated, "took_ms", time.Since(start).Milliseconds())
		return routes(&rt, dir, tokens)
	})
	svc.Main()
}
