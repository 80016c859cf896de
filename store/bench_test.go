package store

import (
	"database/sql"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkCommit is the cost of one small write transaction (a row of
// ~100 bytes) on SQLite, by synchronous setting: FULL syncs the
// write-ahead log at every commit, NORMAL only at checkpoints; TxNoSync
// on a FULL database commits as NORMAL does; with 16 writers at once, Tx
// calls that wait for the lock commit together (group commit), one fsync
// for many. Run them in one invocation, so they share the machine's
// state:
//
//	go test ./store -run '^$' -bench Commit -count 5
func BenchmarkCommit(b *testing.B) {
	for _, bc := range []struct {
		name, sync string
		nosync     bool
		writers    int
	}{
		{"synchronous=NORMAL", "NORMAL", false, 1},
		{"synchronous=FULL", "FULL", false, 1},
		{"synchronous=FULL/TxNoSync", "FULL", true, 1},
		{"synchronous=NORMAL/16_writers", "NORMAL", false, 16},
		{"synchronous=FULL/16_writers", "FULL", false, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := openSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"), Config{Synchronous: bc.sync}, BusyTimeout)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			tx := db.Tx
			if bc.nosync {
				tx = db.TxNoSync
			}
			body := string(make([]byte, 100))
			commit := func() error {
				return tx(b.Context(), func(tx *sql.Tx) error {
					_, err := tx.Exec(`INSERT INTO t (body) VALUES ($1)`, body)
					return err
				})
			}
			b.ReportAllocs()
			if bc.writers == 1 {
				for b.Loop() {
					if err := commit(); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			// RunParallel's goroutines are GOMAXPROCS × parallelism.
			b.SetParallelism(max(1, bc.writers/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := commit(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
