// Command playback is the flix playback service: it starts viewing
// sessions and takes their progress reports, which it publishes as
// "progress" events to history and recommendations.
//
//	POST /sessions                 {"profile", "title"} → 201 Session{id, profile, title, manifest_url, started_at, ...}
//	GET  /sessions/{id}            the session and its last reported position
//	POST /sessions/{id}/progress   {"position_s", "duration_s"}, Idempotency-Key required → 200 progress.Report
//	GET  /openapi.json             this API, as OpenAPI 3.1
//
// POST /sessions takes the signed-in profile when the body names none, and
// checks that it may watch the title: it asks profiles (GET
// http://profiles/profiles/{p}) and catalog (GET http://catalog/titles/{t})
// at once, and checks the title's maturity against the ones the profiles
// service says the profile may watch (403 not_allowed otherwise, also for
// a title without a rating; 404 for an unknown profile or title).
//
// A progress report is recorded, published (topic "progress", payload
// {"profile", "title", "session", "position_s", "duration_s", "at"}) and
// its answer stored under its Idempotency-Key in one transaction, through
// the SDK's transactional outbox (events.Outbox) and idempotency package:
// a report retried, hedged or failed over applies and publishes once.
// Every instance runs the outbox's delivery loop, which POSTs each event
// to the subscribers' /_events, retrying until they take it.
//
// Profile routes follow the flix rule: they answer only the profile
// signed in (a session: its profile's) for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
package main

import (
	"context"
	"log/slog"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/telemetry"
)

// subscribers receive playback's events.
var subscribers = map[string][]string{progress.Topic: {"history", "recommendations"}}

func main() {
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "playback", Calls: []string{"profiles", "catalog"}}, &rt)
	svc.Prepare(func(ctx context.Context) error {
		db, err := store.Open(ctx, "playback")
		if err != nil {
			return err
		}
		sess, err := openSessions(ctx, db)
		if err != nil {
			return err
		}
		metrics, err := telemetry.NewEventMetrics(svc.Metrics().Registry())
		if err != nil {
			return err
		}
		// Events leave through the service's client.
		cfg := events.OutboxConfig{Subscribers: subscribers, Client: svc.Client(), Logger: slog.Default(), Metrics: metrics}
		if err := cfg.Validate(); err != nil {
			return err
		}
		outbox := events.NewOutbox(db, cfg)
		if err := outbox.Migrate(ctx); err != nil {
			return err
		}
		(&playback{sessions: sess, client: svc.Client(), outbox: outbox}).routes(&rt)
		// Events not delivered when the instance stops stay in the
		// outbox for the other instances (or the next start) to deliver.
		svc.Go("outbox", outbox.Run)
		svc.Go("idempotency keys purge", sess.keys.Run)
		return nil
	})
	svc.Main()
}
