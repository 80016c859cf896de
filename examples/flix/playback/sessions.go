package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal"
	"github.com/shoal-dev/shoal/events"
	"github.com/shoal-dev/shoal/examples/flix/internal/progress"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/store"
)

// migrations is the playback schema, in SQL both SQLite and PostgreSQL
// accept. The idempotency keys' table is the SDK's (idempotency.Store
// migrates it).
var migrations = []store.Migration{
	{SQL: `CREATE TABLE sessions (
		id         TEXT             NOT NULL PRIMARY KEY,
		profile    TEXT             NOT NULL,
		title      BIGINT           NOT NULL,
		started_at BIGINT           NOT NULL,
		position_s DOUBLE PRECISION NOT NULL,
		duration_s DOUBLE PRECISION NOT NULL,
		updated_at BIGINT           NOT NULL
	)`},
	// Retired: the idempotency package's table on PostgreSQL, which
	// idempotency.Store.Migrate now creates under the migration lock.
	{},
}

// Session is one viewing of a title by a profile. Times are Unix
// milliseconds; PositionS and DurationS are where the last progress report
// left it (DurationS starts as the catalog's duration of the title).
type Session struct {
	ID          string  `json:"id"`
	Profile     string  `json:"profile"`
	Title       int64   `json:"title"`
	ManifestURL string  `json:"manifest_url"`
	StartedAt   int64   `json:"started_at"`
	PositionS   float64 `json:"position_s"`
	DurationS   float64 `json:"duration_s"`
	UpdatedAt   int64   `json:"updated_at"`
}

// manifestURL is where the player fetches the session's stream.
func manifestURL(title int64, session string) string {
	return fmt.Sprintf("https://cdn.flix.example/v1/titles/%d/master.m3u8?session=%s", title, session)
}

// publisher publishes an event in the caller's transaction, so that the
// event exists if and only if the transaction commits. *events.Outbox is
// one; it is called from request goroutines.
type publisher interface {
	Publish(ctx context.Context, tx *sql.Tx, topic string, payload any) (events.Event, error)
}

// sessions is the playback database, shared by every instance.
type sessions struct {
	db      *store.DB
	keys    *idempotency.Store
	getStmt *sql.Stmt
}

// openSessions migrates db (the idempotency keys' table included) and
// prepares the lookup. Any number of instances may call it at once.
func openSessions(ctx context.Context, db *store.DB) (*sessions, error) {
	if err := db.Migrate(ctx, "playback", migrations); err != nil {
		return nil, fmt.Errorf("migrating: %w", err)
	}
	keys, err := idempotency.New(db, idempotency.Config{})
	if err != nil {
		return nil, err
	}
	if err := keys.Migrate(ctx); err != nil {
		return nil, err
	}
	get, err := db.PrepareContext(ctx, `SELECT profile, title, started_at, position_s, duration_s, updated_at FROM sessions WHERE id = $1`)
	if err != nil {
		return nil, err
	}
	return &sessions{db: db, keys: keys, getStmt: get}, nil
}

// Close releases the prepared statement; the caller closes the database.
func (s *sessions) Close() error { return s.getStmt.Close() }

// newSessionID returns a random session id (26 base32 characters).
func newSessionID() string { return rand.Text() }

// create stores a new session and returns the answer (the session as
// JSON). With a claim, the answer is recorded under the request's key in
// the same transaction.
func (s *sessions) create(ctx context.Context, claim *idempotency.Claim, profile string, title int64, duration float64) ([]byte, error) {
	now := time.Now().UnixMilli()
	sess := Session{ID: newSessionID(), Profile: profile, Title: title, StartedAt: now, DurationS: duration, UpdatedAt: now}
	sess.ManifestURL = manifestURL(title, sess.ID)
	body, err := shoal.EncodeJSON(sess)
	if err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, profile, title, started_at, position_s, duration_s, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			sess.ID, sess.Profile, sess.Title, sess.StartedAt, sess.PositionS, sess.DurationS, sess.UpdatedAt); err != nil {
			return err
		}
		if claim != nil {
			return claim.Complete(ctx, tx, http.StatusCreated, "application/json", body)
		}
		return nil
	})
	return body, err
}

// get returns the session with the id; ok is false if there is none.
func (s *sessions) get(ctx context.Context, id string) (sess Session, ok bool, err error) {
	err = s.getStmt.QueryRowContext(ctx, id).Scan(&sess.Profile, &sess.Title, &sess.StartedAt, &sess.PositionS, &sess.DurationS, &sess.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	sess.ID = id
	sess.ManifestURL = manifestURL(sess.Title, id)
	return sess, true, nil
}

// progress records p on its session, publishes it with pub, and records
// the answer (p as JSON) under claim's key, all in one transaction: the
// report, its event and its answer exist together or not at all.
func (s *sessions) progress(ctx context.Context, claim *idempotency.Claim, pub publisher, p progress.Report) ([]byte, error) {
	body, err := shoal.EncodeJSON(p)
	if err != nil {
		return nil, err
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET position_s = $1, duration_s = $2, updated_at = $3 WHERE id = $4`,
			p.PositionS, p.DurationS, p.At, p.Session)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(err, fmt.Errorf("session %s: %d rows updated", p.Session, n))
		}
		if _, err := pub.Publish(ctx, tx, progress.Topic, p); err != nil {
			return fmt.Errorf("publishing: %w", err)
		}
		if claim != nil {
			return claim.Complete(ctx, tx, http.StatusOK, "application/json", body)
		}
		return nil
	})
	return body, err
}
