package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// MigrationsTable records, per migration list name, how many of its
// migrations a database has applied.
const MigrationsTable = "shoal_migrations"

// Migration is one step of a schema's history. Once released, a migration
// never changes: fix mistakes with a new one.
type Migration struct {
	// SQL runs on every dialect unless Postgres is set; it may hold
	// several statements separated by ';'. Empty SQL is a no-op step
	// (e.g. a migration retired from one dialect).
	SQL string
	// Postgres, if not empty, runs instead of SQL on PostgreSQL, where
	// the dialects differ (BYTEA for BLOB, SERIAL, …).
	Postgres string
}

// Migrate brings the migration list called name up to date: it applies
// ms[n:], where n is how many of ms the database has applied under name
// (recorded in MigrationsTable). Each migration runs in its own
// transaction, with the record of it, so a failure leaves the database at
// the last migration that succeeded, and the next Migrate resumes there.
// Several lists (names) share a database: a service's own, the SDK's
// ("events.outbox", …).
//
// Instances and processes starting at once may all call Migrate: each step
// reads n and applies ms[n] under a lock (SQLite: the write lock, taken by
// BEGIN IMMEDIATE and retried while busy; PostgreSQL: an advisory lock on a
// hash of name), so every migration is applied exactly once. A database
// that has applied more migrations than ms holds (a newer program wrote
// it) is an error.
func (db *DB) Migrate(ctx context.Context, name string, ms []Migration) error {
	if name == "" {
		return errors.New("store: migrate: empty name")
	}
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if db.Dialect == Postgres {
			// CREATE TABLE IF NOT EXISTS may fail on the catalog's
			// unique index when two run at once: take turns.
			if err := advisoryLock(ctx, tx, MigrationsTable); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+MigrationsTable+` (
			name    TEXT    NOT NULL PRIMARY KEY,
			version INTEGER NOT NULL
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: creating %s: %w", MigrationsTable, err)
	}
	for {
		var version int
		done := false
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			done = false
			if db.Dialect == Postgres {
				if err := advisoryLock(ctx, tx, "migrate:"+name); err != nil {
					return err
				}
			}
			err := tx.QueryRowContext(ctx, `SELECT version FROM `+MigrationsTable+` WHERE name = $1`, name).Scan(&version)
			if errors.Is(err, sql.ErrNoRows) {
				version, err = 0, nil
			}
			if err != nil {
				return err
			}
			if version > len(ms) {
				return fmt.Errorf("the database has applied %d migrations, this program knows %d (a newer version wrote it)", version, len(ms))
			}
			if version == len(ms) {
				done = true
				return nil
			}
			m := ms[version]
			stmt := m.SQL
			if db.Dialect == Postgres && m.Postgres != "" {
				stmt = m.Postgres
			}
			if strings.TrimSpace(stmt) != "" {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO `+MigrationsTable+` (name, version) VALUES ($1, $2)
				ON CONFLICT (name) DO UPDATE SET version = excluded.version`, name, version+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migrate %s to version %d: %w", name, version+1, err)
		}
		if done {
			return nil
		}
	}
}
