package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/idempotency"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Rating is a profile's score of a title.
type Rating struct {
	Profile   string    `json:"profile"`
	Title     int64     `json:"title"`
	Score     int       `json:"score"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Average is a title's average score; Average is nil while Count is 0.
type Average struct {
	Title   int64    `json:"title"`
	Average *float64 `json:"average"`
	Count   int      `json:"count"`
}

// schema is the list of migrations; the database's user_version is how many
// have been applied. Statements are idempotent too, so a half-known state
// (a file from an older build) cannot fail them.
var schema = [][]string{
	{
		`CREATE TABLE IF NOT EXISTS ratings (
			profile    TEXT    NOT NULL,
			title      INTEGER NOT NULL,
			score      INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
			updated_at TEXT    NOT NULL,
			PRIMARY KEY (profile, title)
		) WITHOUT ROWID`,
		`CREATE INDEX IF NOT EXISTS ratings_by_title ON ratings (title, score)`,
	},
	// Keys moved to the SDK's table (idempotency.Store.Migrate), which
	// expires them; the old table held keys forever.
	{`DROP TABLE IF EXISTS idempotency_keys`},
}

// store is the ratings database. Several processes may open the same file;
// SQLite's file locks serialize their writes. Idempotency keys live in the
// same file, in the SDK's table, so that a rating and its key commit in one
// transaction.
type store struct {
	db   *sql.DB
	keys *idempotency.Store
}

// busyTimeout is how long a statement waits for another connection's (or
// process's) lock before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// openStore opens (creating if needed) the database at path, switches it to
// WAL and applies the migrations, the idempotency keys' included; keys
// follows keysCfg. Several processes may call it at once on the same file:
// each step retries while another holds the lock.
func openStore(ctx context.Context, path string, keysCfg idempotency.Config) (*store, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("database path %q: must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(NORMAL)") // durable enough in WAL mode, much faster
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate") // writers take the lock up front: no upgrade deadlocks
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	if keysCfg.Transient == nil {
		keysCfg.Transient = isBusy // as retryBusy does for ratings' own writes
	}
	keys, err := idempotency.New(db, keysCfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &store{db: db, keys: keys}
	if err := s.setup(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (s *store) setup(ctx context.Context) error {
	// WAL is a property of the file: set once, seen by every connection.
	err := retryBusy(ctx, func() error {
		var mode string
		if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
			return err
		}
		if !strings.EqualFold(mode, "wal") {
			return fmt.Errorf("journal mode is %q, want wal", mode)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("enabling WAL: %w", err)
	}
	if err := retryBusy(ctx, func() error { return s.migrate(ctx) }); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	if err := retryBusy(ctx, func() error { return s.keys.Migrate(ctx) }); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// migrate applies the migrations not yet applied, all in one write
// transaction, so that of several instances starting at once one applies
// them and the others find them done.
func (s *store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(schema) {
		return fmt.Errorf("schema version %d is newer than this program's %d", version, len(schema))
	}
	for _, stmts := range schema[version:] {
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	}
	if version < len(schema) {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(schema))); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *store) Close() error { return s.db.Close() }

// put sets profile's score of title and returns the answer (the rating as
// JSON). With a claim, the answer is recorded under the request's
// idempotency key in the same transaction: the write applies once per key.
// A nil claim writes without a key (tests, tools).
func (s *store) put(ctx context.Context, claim *idempotency.Claim, r Rating) ([]byte, error) {
	var body []byte
	err := retryBusy(ctx, func() error {
		var err error
		body, err = s.putOnce(ctx, claim, r)
		return err
	})
	return body, err
}

func (s *store) putOnce(ctx context.Context, claim *idempotency.Claim, r Rating) ([]byte, error) {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one writer at a time
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	r.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
	if _, err := tx.ExecContext(ctx, `INSERT INTO ratings (profile, title, score, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (profile, title) DO UPDATE SET score = excluded.score, updated_at = excluded.updated_at`,
		r.Profile, r.Title, r.Score, r.UpdatedAt.Format(time.RFC3339Nano)); err != nil {
		return nil, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	if claim != nil {
		if err := claim.Complete(ctx, tx, http.StatusOK, "application/json", body); err != nil {
			return nil, err
		}
	}
	return body, tx.Commit()
}

// get returns profile's rating of title; ok is false if there is none.
func (s *store) get(ctx context.Context, profile string, title int64) (r Rating, ok bool, err error) {
	var stamp string
	err = s.db.QueryRowContext(ctx, `SELECT score, updated_at FROM ratings WHERE profile = ? AND title = ?`, profile, title).
		Scan(&r.Score, &stamp)
	if errors.Is(err, sql.ErrNoRows) {
		return Rating{}, false, nil
	}
	if err != nil {
		return Rating{}, false, err
	}
	r.Profile, r.Title = profile, title
	r.UpdatedAt, err = time.Parse(time.RFC3339Nano, stamp)
	return r, err == nil, err
}

// average returns title's average score, rounded to two decimals.
func (s *store) average(ctx context.Context, title int64) (Average, error) {
	a := Average{Title: title}
	var avg sql.NullFloat64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), AVG(score) FROM ratings WHERE title = ?`, title).Scan(&a.Count, &avg)
	if err != nil {
		return Average{}, err
	}
	if avg.Valid {
		v := math.Round(avg.Float64*100) / 100
		a.Average = &v
	}
	return a, nil
}

// retryBusy runs f until it succeeds, fails with something other than a
// locked database, or ctx ends. busy_timeout already waits inside SQLite;
// this covers the cases where SQLite returns SQLITE_BUSY at once (e.g. a
// journal mode change, or a deadlock it breaks by failing one side).
func retryBusy(ctx context.Context, f func() error) error {
	backoff := 5 * time.Millisecond
	for {
		err := f()
		if err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED (extended
// codes included): another connection holds the lock.
func isBusy(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}
