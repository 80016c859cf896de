package store

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// BenchmarkCommit is the cost of one small write transaction (a row of
// ~100 bytes) on SQLite, by synchronous setting: FULL syncs the
// write-ahead log at every commit, NORMAL only at checkpoints. Run the
// settings in one invocation, so they share the machine's state:
//
//	go test ./store -run '^$' -bench Commit -count 5
func BenchmarkCommit(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			db, err := openSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Config{Synchronous: sync}, BusyTimeout)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			body := string(make([]byte, 100))
			b.ReportAllocs()
			for b.Loop() {
				err := db.Tx(b.Context(), func(tx *sql.Tx) error {
					_, err := tx.Exec(`INSERT INTO t (body) VALUES ($1)`, body)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
