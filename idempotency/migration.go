package idempotency

import "github.com/shoal-dev/shoal/store"

// PostgresMigration creates Table with its body as BYTEA, and its index, on
// PostgreSQL; on SQLite it does nothing (Migrate creates them there). A
// service on store.DB puts it in its own migration list, which runs under
// the migration lock: on PostgreSQL the table must exist before Migrate,
// whose BLOB is SQLite's and whose statements, run by several instances at
// once outside that lock, can fail there.
var PostgresMigration = store.Migration{Postgres: `CREATE TABLE IF NOT EXISTS ` + Table + ` (
		idem_key     TEXT    NOT NULL PRIMARY KEY,
		fingerprint  TEXT    NOT NULL,
		token        TEXT    NOT NULL,
		status       INTEGER NOT NULL,
		lease_until  BIGINT  NOT NULL,
		expires_at   BIGINT  NOT NULL,
		content_type TEXT    NOT NULL,
		body         BYTEA
	);
	CREATE INDEX IF NOT EXISTS ` + Table + `_expires ON ` + Table + ` (expires_at)`}
