// Command playback is the flix playback service: it starts viewing
// sessions and takes their progress reports, which it publishes as
// "progress" events to history and recommendations.
//
//	POST /sessions                 {"profile", "title"} → 201 Session{id, profile, title, manifest_url, started_at, ...}
//	GET  /sessions/{id}            the session and its last reported position
//	POST /sessions/{id}/progress   {"position_s", "duration_s"}, Idempotency-Key required → 200 Progress
//	GET  /openapi.json             this API, as OpenAPI 3.1
//
// POST /sessions takes the profile from the gateway's Shoal-Subject header
// when the body names none, and checks that it may watch the title: it
// asks profiles (GET http://profiles/profiles/{p}) and catalog
// (GET http://catalog/titles/{t}) at once, and compares maturities (kids
// watch "all" titles, teens "all" and "teen", adults everything; 403
// not_allowed otherwise, 404 for an unknown profile or title).
//
// A progress report is recorded, published (topic "progress", payload
// {"profile", "title", "session", "position_s", "duration_s", "at"}) and
// its answer stored under its Idempotency-Key in one transaction, through
// the SDK's transactional outbox (events.Outbox) and idempotency package:
// a report retried, hedged or failed over applies and publishes once.
// Every instance runs the outbox's delivery loop, which POSTs each event
// to the subscribers' /_events, retrying until they take it.
//
// Profile-scoped requests follow the flix rule: a Shoal-Subject naming
// another profile than the session's gets 403 forbidden; requests without
// it come from inside the system and are allowed.
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
	"github.com/shoal-dev/shoal/telemetry"
)

// subscribers receive playback's events.
var subscribers = map[string][]string{TopicProgress: {"history", "recommendations"}}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "playback")) // like the SDK's logs
	// Other instances may hold the database's write lock while starting too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, "playback")
	if err != nil {
		fail(err)
	}
	sess, err := openSessions(ctx, db)
	if err != nil {
		fail(err)
	}
	p := &playback{sessions: sess}
	svc := shoal.Setup(shoal.Config{Name: "playback"}, newHandler(p))
	// Set before Main serves the first request.
	p.client = svc.Client()
	metrics, err := telemetry.NewEventMetrics(svc.Metrics().Registry())
	if err != nil {
		fail(err)
	}
	cfg := events.OutboxConfig{Subscribers: subscribers, Client: p.client, Logger: slog.Default(), Metrics: metrics}
	if err := cfg.Validate(); err != nil {
		fail(err)
	}
	outbox := events.NewOutbox(db, cfg)
	if err := outbox.Migrate(ctx); err != nil {
		fail(err)
	}
	p.outbox = outbox
	cancel()
	// Both loops live as long as the process: Main ends it with os.Exit
	// after the drain. Events not delivered by then stay in the outbox for
	// the other instances (or the next start) to deliver.
	go outbox.Run(context.Background())
	go sess.keys.Run(context.Background())
	svc.Main()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "playback:", err)
	os.Exit(1)
}
