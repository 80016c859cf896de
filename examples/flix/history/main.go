// Command history is the flix viewing history service: where each profile
// stopped in each title, and what to offer in "continue watching". It
// learns from playback's "progress" events, which it subscribes to.
//
//	GET  /history/{profile}            {"profile", "items": [{"title", "position_s", "duration_s", "updated_at", "finished", "watches"}]}, newest first
//	GET  /history/{profile}/continue   the same, unfinished items only (position below 95% of the duration)
//	POST /_events                      event delivery from playback's outbox (events.Inbox; internal)
//	GET  /openapi.json                 this API, as OpenAPI 3.1
//
// Both lists take ?limit= (default 20, at most 200). updated_at is the
// time of the report (Unix milliseconds), finished says the position
// passed 95% of the duration, watches counts the sessions that reported on
// the title.
//
// Events may come twice or out of order (the outbox retries, several
// playback instances deliver at once): the Inbox applies each event id
// once, in one transaction with its record; the position moves only to a
// later report (by its "at"); and a session's many reports count as one
// watch.
//
// Profile-scoped routes follow the flix rule: a request whose
// Shoal-Subject names another profile is refused (403 forbidden); one
// without it comes from inside the system and is allowed.
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
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "history")) // like the SDK's logs
	// Other instances may hold the database's write lock while starting too.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	db, err := store.Open(ctx, "history")
	if err != nil {
		fail(err)
	}
	l, err := openLedger(ctx, db)
	if err != nil {
		fail(err)
	}
	inbox, err := newInbox(ctx, db, l)
	cancel()
	if err != nil {
		fail(err)
	}
	shoal.Main(shoal.Config{Name: "history"}, newHandler(l, inbox))
}

// newInbox returns the Inbox that applies "progress" events to l.
func newInbox(ctx context.Context, db *store.DB, l *ledger) (*events.Inbox, error) {
	inbox := events.NewInbox(db)
	if err := inbox.Migrate(ctx); err != nil {
		return nil, err
	}
	inbox.Handle("progress", l.applyProgress)
	return inbox, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "history:", err)
	os.Exit(1)
}
