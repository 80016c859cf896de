package store

import (
	"context"
	"database/sql"
	"fmt"
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

// BenchmarkSmallTx is the cost of a typical small transaction on SQLite,
// an upsert and a read by primary key (tx), and of that read alone outside
// a transaction (read), with the statement cache off (each statement
// parsed and planned at every run, as modernc.org/sqlite does alone) and
// on. Synchronous NORMAL, so that no fsync hides the CPU: run them in one
// invocation, so they share the machine's state:
//
//	go test ./store -run '^$' -bench SmallTx -count 6
func BenchmarkSmallTx(b *testing.B) {
	const (
		upsert = `INSERT INTO kv (id, v, n) VALUES ($1, $2, 1)
			ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = kv.n + 1`
		get = `SELECT v, n FROM kv WHERE id = $1`
	)
	for _, kind := range []string{"tx", "read"} {
		for _, size := range []int{0, stmtCacheSize} {
			b.Run(fmt.Sprintf("%s/stmtcache=%d", kind, size), func(b *testing.B) {
				cacheSize(b, size)
				ctx := b.Context()
				db, err := openSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"), Config{Synchronous: "NORMAL"}, BusyTimeout)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(`CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL)`); err != nil {
					b.Fatal(err)
				}
				read := func(q interface {
					QueryRowContext(context.Context, string, ...any) *sql.Row
				}, id int) error {
					var v string
					var n int
					return q.QueryRowContext(ctx, get, id).Scan(&v, &n)
				}
				run := func(id int) error {
					return db.Tx(ctx, func(tx *sql.Tx) error {
						if _, err := tx.ExecContext(ctx, upsert, id, "value"); err != nil {
							return err
						}
						return read(tx, id)
					})
				}
				if kind == "read" {
					for id := range 1000 {
						if err := run(id); err != nil {
							b.Fatal(err)
						}
					}
					run = func(id int) error { return read(db, id) }
				}
				b.ReportAllocs()
				id := 0
				for b.Loop() {
					if err := run(id % 1000); err != nil {
						b.Fatal(err)
					}
					id++
				}
			})
		}
	}
}
