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
// Profile routes follow the flix rule: they answer only the profile
// signed in for the request, as its user token says (Shoal-User-Token,
// minted by the gateway and verified by the SDK's identity.Guard; see
// package profile): 401 without one, 403 for another profile. No header
// names a profile, and a call made for no one reads no profile's data.
package main

import (
	"context"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/store"
)

func main() {
	var rt shoal.Router
	svc := shoal.Setup(shoal.Config{Name: "history"}, &rt)
	svc.Prepare(func(ctx context.Context) error {
		db, err := store.Open(ctx, "history")
		if err != nil {
			return err
		}
		l, err := openLedger(ctx, db)
		if err != nil {
			return err
		}
		inbox, err := newInbox(ctx, db, l)
		if err != nil {
			return err
		}
		routes(&rt, l, inbox)
		return nil
	})
	svc.Main()
}

// newInbox returns the Inbox that applies "progress" events to l.
func newInbox(ctx context.Context, db *store.DB, l *ledger) (*events.Inbox, error) {
	inbox := events.NewInbox(db)
	if err := inbox.Migrate(ctx); err != nil {
		return nil, err
	}
	inbox.Handle(progress.Topic, l.applyProgress)
	return inbox, nil
}
