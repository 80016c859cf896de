package idempotency

import (
	"strings"
	"testing"
)

// The PostgreSQL table is Migrate's, with BYTEA for SQLite's BLOB; SQLite
// runs nothing.
func TestPostgresMigration(t *testing.T) {
	m := PostgresMigration
	if m.SQL != "" || strings.Contains(m.Postgres, "BLOB") || !strings.Contains(m.Postgres, "body         BYTEA") ||
		!strings.Contains(m.Postgres, "CREATE INDEX IF NOT EXISTS "+Table+"_expires") {
		t.Fatalf("migration %+v", m)
	}
}
