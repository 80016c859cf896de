package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"

	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/store"
)

// migrations is the schema's history (store.DB.Migrate).
var migrations = []store.Migration{{
	SQL: `CREATE TABLE watched (
			profile    TEXT             NOT NULL,
			title      INTEGER          NOT NULL,
			position_s DOUBLE PRECISION NOT NULL,
			duration_s DOUBLE PRECISION NOT NULL,
			at         BIGINT           NOT NULL,
			PRIMARY KEY (profile, title)
		);
		CREATE INDEX watched_by_profile_at ON watched (profile, at)`,
}, {
	// In latest's order, with the title: latest reads the index alone,
	// and sorts nothing.
	SQL: `DROP INDEX watched_by_profile_at;
		CREATE INDEX watched_by_profile_latest ON watched (profile, at DESC, title)`,
}}

// watchedStore keeps, per profile, the titles it watched (from playback's
// progress events) and when it last did: the seeds of its
// recommendations.
type watchedStore struct {
	db *store.DB
}

// openWatched migrates what profiles watched in db, and returns it with
// the inbox that records playback's "progress" events in it.
func openWatched(ctx context.Context, db *store.DB) (*watchedStore, *events.Inbox, error) {
	ws := &watchedStore{db: db}
	inbox := events.NewInbox(db)
	inbox.Handle(progress.Topic, ws.handleProgress)
	if err := db.Migrate(ctx, "recommendations", migrations); err != nil {
		return nil, nil, err
	}
	return ws, inbox, inbox.Migrate(ctx)
}

// maxWatched bounds the watched titles read per recommendation (the
// latest ones): what it starts from, and what it leaves out.
const maxWatched = 500

// handleProgress records a progress event. Events come in any order: the
// latest by At wins, an older one changes nothing. An event that is not a
// progress report is logged and dropped: delivering it again would not
// make it one.
func (ws *watchedStore) handleProgress(ctx context.Context, tx *sql.Tx, ev events.Event) error {
	var p progress.Report
	if err := json.Unmarshal(ev.Payload, &p); err != nil || profile.CheckID(p.Profile) != nil || p.Title < 1 {
		slog.Warn("recommendations: dropping a progress event that is not a progress report", "event", ev.ID,
			"payload", string(ev.Payload[:min(len(ev.Payload), 200)]), "err", err)
		return nil
	}
	if p.At == 0 {
		p.At = ev.CreatedAt.UnixMilli()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO watched (profile, title, position_s, duration_s, at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (profile, title) DO UPDATE SET position_s = excluded.position_s, duration_s = excluded.duration_s, at = excluded.at
		WHERE excluded.at > watched.at`, p.Profile, p.Title, p.PositionS, p.DurationS, p.At)
	return err
}

// latest returns the titles profile watched, the latest first.
func (ws *watchedStore) latest(ctx context.Context, profile string) ([]int, error) {
	// Prepared once per connection by store's statement cache.
	rows, err := ws.db.QueryContext(ctx, `SELECT title FROM watched WHERE profile = $1 ORDER BY at DESC, title LIMIT $2`, profile, maxWatched)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
