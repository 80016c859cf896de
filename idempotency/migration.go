package idempotency

import (
	"strings"

	"github.com/shoal-dev/shoal/store"
)

// PostgresMigration creates Table with its body as BYTEA, and its index, on
// PostgreSQL; on SQLite it does nothing (Migrate creates them there). A
// service on store.DB puts it in its own migration list, which runs under
// the migration lock: on PostgreSQL the table must exist before Migrate,
// whose BLOB is SQLite's and whose statements, run by several instances at
// once outside that lock, can fail there.
var PostgresMigration = store.Migration{
	Postgres: strings.Replace(schema[0], "BLOB", "BYTEA", 1) + ";\n" + schema[1],
}
