// Package events carries events between services without a broker: a
// transactional outbox on the producer's side, a deduplicating inbox on
// the subscriber's, and plain HTTP between them, through the same client
// as every other call (principle 5: services talk through HTTP APIs and
// events; each owns its data).
//
// A producer publishes in the transaction that changes its own data:
//
//	metrics, err := telemetry.NewEventMetrics(svc.Metrics().Registry()) // optional: outcomes at /metrics
//	…
//	out := events.NewOutbox(db, events.OutboxConfig{
//		Subscribers: map[string][]string{"progress": {"history", "recommendations"}},
//		Client:      svc.Client(),
//		Metrics:     metrics,
//	})
//	… out.Migrate(ctx) in svc.Prepare; svc.Go("outbox", out.Run), so that the drain stops it …
//	err := db.Tx(ctx, func(tx *sql.Tx) error {
//		if _, err := tx.ExecContext(ctx, `UPDATE …`); err != nil {
//			return err
//		}
//		_, err := out.Publish(ctx, tx, "progress", Progress{…})
//		return err
//	})
//
// and a subscriber applies events in the transaction that records them:
//
//	in := events.NewInbox(db)
//	in.Handle("progress", func(ctx context.Context, tx *sql.Tx, ev events.Event) error { … })
//	… in.Migrate(ctx) in svc.Prepare; rt.Handle("POST "+events.Path, in) …
//
// (svc is the producer's or subscriber's shoal.Service, rt its
// shoal.Router; the manifest's authorization: must let the producer call
// the subscriber.)
//
// # How
//
// Publish inserts the event and one delivery row per subscriber in the
// caller's transaction (tables shoal_outbox_events and
// shoal_outbox_deliveries in the producer's database). Outbox.Run claims
// due rows under a lease, so that producer instances sharing the database
// split the work, POSTs each to http://<subscriber>/_events (headers
// Shoal-Event-Id, Shoal-Event-Topic, Shoal-Event-Time, Idempotency-Key;
// body: the payload), marks 2xx answers delivered, and gives other
// outcomes an exponential, jittered backoff before the next attempt.
// Inbox.ServeHTTP inserts the event ID into shoal_inbox (ON CONFLICT DO
// NOTHING) and, if the ID is new, runs the topic's Handler, both in one
// transaction. The Idempotency-Key (the event ID) lets Shoal's client
// retry a delivery on another instance of the subscriber; the Inbox
// deduplicates by itself, so mount it outside idempotency middleware.
//
// # Who may deliver
//
// An inbox is an ordinary endpoint of its service, so an SDK service with
// an identity (every instance under shoal up) serves it behind the same
// identity.Guard as the rest: a delivery must come over mutual TLS with the
// publisher's certificate, from a service the manifest's authorization:
// lets call the subscriber; anonymous posts are refused (401) before the
// inbox runs. The inbox itself also refuses (403) a request that passed
// the Guard on an end user's token alone: a user is not a publisher. The
// outbox delivers through the service's own client, so it presents the
// producer's certificate with no code of its own. A service without an
// identity (plain HTTP, tests) accepts deliveries from anyone who reaches
// it.
//
// # Guarantees
//
//   - Atomic publication: an event exists if and only if the producer's
//     transaction commits.
//   - At-least-once delivery: every delivery row is retried until its
//     subscriber answers 2xx, or until its bound, when it becomes a dead
//     letter (below): never dropped silently. A producer instance that
//     dies while holding claims leaves them leased; another instance (or
//     its restart) takes them over after OutboxConfig.Lease. A panic
//     while delivering is recovered and counts as a failed attempt. A
//     delivery may thus arrive more than once, also concurrently (a
//     hedged or failed over request, two producers after a lease
//     expired).
//   - Exactly-once effects: a Handler's writes through its tx commit
//     together with the record of the event ID, so each event applies once
//     per subscriber database, however often it arrives. Effects outside
//     that transaction (calls to other services, files) are at-least-once:
//     make them idempotent, e.g. keyed on Event.ID.
//
// # Not guaranteed
//
//   - Order: none, not even per topic or per producer. Deliveries run
//     concurrently, and a failed one is retried after later ones succeed.
//     Handlers that keep the latest state compare Event.CreatedAt (or a
//     version in the payload) with what they stored.
//   - Liveness of a subscriber: a service that never comes back, or
//     answers non-2xx forever (a handler bug, a topic it does not handle:
//     404), keeps its rows pending and retried at OutboxConfig.MaxBackoff
//     intervals (they show in Outbox.Stats as Pending, Retrying, and in
//     warnings) until their bound; then they become dead letters. Other
//     subscribers and topics are not held up.
//   - Retention: delivered rows and finished events are deleted after
//     OutboxConfig.Retention, dead letters (and then their events) after
//     DeadLetterRetention; the inbox forgets IDs after InboxRetention,
//     after which a (very) late duplicate would apply again. The inbox
//     purges once a minute, in batches until none is left, so it keeps up
//     with any rate of events.
//   - Subscribers are fixed by the producer's configuration: a new
//     subscriber gets the events published after the producer knows it.
//   - Leases compare clocks of the producer instances: across hosts, skew
//     must stay well under Lease.
//
// # Dead letters
//
// A delivery that failed OutboxConfig.MaxAttempts times (no bound by
// default), or fails MaxAge (default 24 h) after it became pending, moves
// to shoal_outbox_dead_letters in the transaction that records its last
// failure: logged at error level, counted (OutboxConfig.Metrics:
// shoal_events_dead_lettered_total, and shoal_events_dead_letters for the
// rows held), and shown in Outbox.Stats. Outbox.DeadLetters lists them and
// Outbox.Redeliver puts them back in the outbox once the subscriber is
// fixed; both say what they do in SQL too, for a database shell:
//
//	SELECT e.topic, dl.service, dl.attempts, dl.last_error, dl.dead_at, e.id, e.payload
//	FROM shoal_outbox_dead_letters dl JOIN shoal_outbox_events e ON e.id = dl.event_id
//	ORDER BY dl.dead_at;
//
// # Databases
//
// Both sides use package store: SQLite (one file, several processes) or
// PostgreSQL, the SQL being portable. On SQLite, Run looks for due rows
// with a read before taking the write lock, so idle producers cost no
// write transactions; on PostgreSQL, claims use FOR UPDATE SKIP LOCKED.
package events
