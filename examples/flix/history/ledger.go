package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"

	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/profile"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/store"
)

// finishedAt is the share of a title's duration past which it counts as
// watched: credits are rarely watched to the end.
const finishedAt = 0.95

// migrations is the history schema, in SQL both SQLite and PostgreSQL
// accept (DOUBLE PRECISION has REAL affinity in SQLite).
//
// history holds one row per profile and title: the latest position (by
// the event's time, not by arrival) and how many sessions watched it.
// history_sessions remembers the sessions already counted, so that a
// session's many progress events count as one watch.
var migrations = []store.Migration{
	{SQL: `CREATE TABLE history (
		profile    TEXT             NOT NULL,
		title      BIGINT           NOT NULL,
		position_s DOUBLE PRECISION NOT NULL,
		duration_s DOUBLE PRECISION NOT NULL,
		updated_at BIGINT           NOT NULL,
		watches    BIGINT           NOT NULL,
		PRIMARY KEY (profile, title)
	)`},
	{SQL: `CREATE INDEX history_recent ON history (profile, updated_at)`},
	{SQL: `CREATE TABLE history_sessions (
		session TEXT   NOT NULL PRIMARY KEY,
		profile TEXT   NOT NULL,
		title   BIGINT NOT NULL
	)`},
}

// Item is one title of a profile's history. UpdatedAt is the time of the
// progress event that set the position, in Unix milliseconds.
type Item struct {
	Title     int64   `json:"title"`
	PositionS float64 `json:"position_s"`
	DurationS float64 `json:"duration_s"`
	UpdatedAt int64   `json:"updated_at"`
	Finished  bool    `json:"finished"`
	Watches   int64   `json:"watches"`
}

// ledger is the history database, shared by every instance.
type ledger struct {
	db *store.DB

	allStmt, continueStmt *sql.Stmt
}

// openLedger migrates db and prepares the read statements. Any number of
// instances may call it at once on one database.
func openLedger(ctx context.Context, db *store.DB) (*ledger, error) {
	if err := db.Migrate(ctx, "history", migrations); err != nil {
		return nil, fmt.Errorf("migrating: %w", err)
	}
	l := &ledger{db: db}
	var err error
	// Both are served by history_recent: one profile's rows, newest first.
	l.allStmt, err = db.PrepareContext(ctx, `SELECT title, position_s, duration_s, updated_at, watches
		FROM history WHERE profile = $1 ORDER BY updated_at DESC, title DESC LIMIT $2`)
	if err != nil {
		return nil, err
	}
	l.continueStmt, err = db.PrepareContext(ctx, fmt.Sprintf(`SELECT title, position_s, duration_s, updated_at, watches
		FROM history WHERE profile = $1 AND duration_s > 0 AND position_s < %v * duration_s
		ORDER BY updated_at DESC, title DESC LIMIT $2`, finishedAt))
	if err != nil {
		l.allStmt.Close()
		return nil, err
	}
	return l, nil
}

// Close releases the prepared statements; the caller closes the database.
func (l *ledger) Close() error {
	l.allStmt.Close()
	return l.continueStmt.Close()
}

// applyProgress is the Inbox's handler of "progress" events: it runs once
// per event id, inside the Inbox's transaction. A malformed event is
// logged and dropped: delivering it again would not mend it.
func (l *ledger) applyProgress(ctx context.Context, tx *sql.Tx, ev events.Event) error {
	var p progress.Report
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		slog.Warn("history: dropping a malformed progress event", "event", ev.ID, "err", err)
		return nil
	}
	if err := checkProgress(p); err != nil {
		slog.Warn("history: dropping an invalid progress event", "event", ev.ID, "err", err)
		return nil
	}
	return l.record(ctx, tx, p)
}

func checkProgress(p progress.Report) error {
	switch {
	case profile.CheckID(p.Profile) != nil:
		return fmt.Errorf("profile %q", p.Profile)
	case p.Title < 1:
		return fmt.Errorf("title %d", p.Title)
	case p.Session == "":
		return fmt.Errorf("no session")
	case !finite(p.PositionS) || p.PositionS < 0 || !finite(p.DurationS) || p.DurationS < 0:
		return fmt.Errorf("position_s %v, duration_s %v", p.PositionS, p.DurationS)
	case p.At <= 0:
		return fmt.Errorf("at %d", p.At)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// record applies p in tx: the position moves only if p is newer than what
// is stored (events may arrive out of order), and the watch count grows
// once per session.
func (l *ledger) record(ctx context.Context, tx *sql.Tx, p progress.Report) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO history_sessions (session, profile, title) VALUES ($1, $2, $3)
		ON CONFLICT (session) DO NOTHING`, p.Session, p.Profile, p.Title)
	if err != nil {
		return err
	}
	newSession, err := res.RowsAffected()
	if err != nil {
		return err
	}
	// Ties on time go to the further position, so that the outcome does
	// not depend on arrival order.
	_, err = tx.ExecContext(ctx, `INSERT INTO history (profile, title, position_s, duration_s, updated_at, watches)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (profile, title) DO UPDATE SET
			position_s = CASE WHEN `+newer+` THEN excluded.position_s ELSE history.position_s END,
			duration_s = CASE WHEN `+newer+` THEN excluded.duration_s ELSE history.duration_s END,
			updated_at = CASE WHEN `+newer+` THEN excluded.updated_at ELSE history.updated_at END,
			watches    = history.watches + excluded.watches`,
		p.Profile, p.Title, p.PositionS, p.DurationS, p.At, newSession)
	return err
}

// newer says, in the upsert above, that the incoming row wins.
const newer = `(excluded.updated_at > history.updated_at OR
	(excluded.updated_at = history.updated_at AND excluded.position_s > history.position_s))`

// items returns up to limit of profile's titles, newest first; with
// unfinished, only those not finished.
func (l *ledger) items(ctx context.Context, profile string, unfinished bool, limit int) ([]Item, error) {
	stmt := l.allStmt
	if unfinished {
		stmt = l.continueStmt
	}
	rows, err := stmt.QueryContext(ctx, profile, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		var it Item
		if err := rows.Scan(&it.Title, &it.PositionS, &it.DurationS, &it.UpdatedAt, &it.Watches); err != nil {
			return nil, err
		}
		it.Finished = it.DurationS > 0 && it.PositionS >= finishedAt*it.DurationS
		items = append(items, it)
	}
	return items, rows.Err()
}
