package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// openWrites opens service's database as the environment says, until t
// ends, checks its dialect and creates a table t in it.
func openWrites(t *testing.T, service string, want store.Dialect) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if db.Dialect != want {
		t.Errorf("dialect %v, want %v", db.Dialect, want)
	}
	if _, err := db.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestOpenFromEnvironment(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		t.Setenv(store.EnvDatabaseURL, "")
		t.Setenv(store.EnvDataDir, dir)
		db := openWrites(t, "my-service", store.SQLite)
		if _, err := os.Stat(filepath.Join(dir, "my-service.db")); err != nil {
			t.Errorf("no database file: %v", err)
		}
		pragmas := map[string]string{"journal_mode": "wal", "busy_timeout": "5000", "foreign_keys": "1", "synchronous": "2"}
		for p, want := range pragmas {
			var got string
			if err := db.QueryRow(`PRAGMA ` + p).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("PRAGMA %s = %s, want %s", p, got, want)
			}
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Setenv(store.EnvDatabaseURL, storetest.Postgres(t))
		// Two services on one database: a schema each.
		for _, svc := range []string{"svc-a", "2nd.B"} {
			db := openWrites(t, svc, store.Postgres) // would fail for the second if they shared a schema
			var schema string
			if err := db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
				t.Fatal(err)
			}
			if want := store.SchemaName(svc); schema != want {
				t.Errorf("current schema %q, want %q", schema, want)
			}
		}
	})
	t.Run("bad", func(t *testing.T) {
		t.Setenv(store.EnvDatabaseURL, "mysql://x")
		if _, err := store.Open(t.Context(), "ok"); err == nil {
			t.Error("Open with a mysql:// URL: no error")
		}
		for _, name := range []string{"", "a/b", "../x", "a b"} {
			if _, err := store.Open(t.Context(), name); err == nil {
				t.Errorf("Open(%q): no error", name)
			}
		}
		if _, err := store.OpenSQLite(t.Context(), "x.db?mode=ro"); err == nil {
			t.Error("OpenSQLite with '?': no error")
		}
	})
}

// TestSynchronous: SQLite commits are synced (FULL, 2) unless the config
// or the environment say otherwise, on every connection of the pool.
func TestSynchronous(t *testing.T) {
	tests := []struct {
		name    string
		cfg     store.Config
		env     string
		want    int // PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
		wantErr string
	}{
		{name: "default", want: 2},
		{name: "config", cfg: store.Config{Synchronous: "normal"}, want: 1},
		{name: "environment", env: "NORMAL", want: 1},
		{name: "environment over config", cfg: store.Config{Synchronous: "NORMAL"}, env: "extra", want: 3},
		{name: "off", cfg: store.Config{Synchronous: "OFF"}, want: 0},
		{name: "bad config", cfg: store.Config{Synchronous: "sometimes"}, wantErr: `synchronous "sometimes"`},
		{name: "bad environment", env: "2", wantErr: store.EnvSynchronous},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(store.EnvDatabaseURL, "")
			t.Setenv(store.EnvDataDir, t.TempDir())
			t.Setenv(store.EnvSynchronous, tt.env)
			db, err := store.OpenConfig(t.Context(), "svc", tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OpenConfig: %v, want an error about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Three connections at once: each must have the setting.
			for i := range 3 {
				conn, err := db.Conn(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				var got int
				if err := conn.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("connection %d: PRAGMA synchronous = %d, want %d", i, got, tt.want)
				}
			}
		})
	}
	if err := (store.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

// TestTxNoSync: TxNoSync's commits do not wait for the disk, Tx's do;
// both write the same database.
func TestTxNoSync(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		where := e.Place(t)
		db := e.MustOpen(t, where)
		if _, err := db.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
			t.Fatal(err)
		}
		query, syncs, nosync := `PRAGMA synchronous`, "2", "1" // FULL, NORMAL
		if e.Name == "postgres" {
			query, syncs, nosync = `SHOW synchronous_commit`, "on", "off"
			// The test server commits without waiting (storetest): make
			// the database's sessions wait, as a real server's do.
			var name string
			if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`ALTER DATABASE "` + name + `" SET synchronous_commit = on`); err != nil {
				t.Fatal(err)
			}
			db = e.MustOpen(t, where) // new sessions
		}
		for _, tt := range []struct {
			name string
			tx   func(context.Context, func(*sql.Tx) error) error
			want string
		}{
			{"Tx", db.Tx, syncs},
			{"TxNoSync", db.TxNoSync, nosync},
			{"Tx again", db.Tx, syncs},
		} {
			var got string
			err := tt.tx(t.Context(), func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO t (x) VALUES (1)`); err != nil {
					return err
				}
				return tx.QueryRow(query).Scan(&got)
			})
			if err != nil || got != tt.want {
				t.Errorf("%s: %s = %q (%v), want %q", tt.name, query, got, err, tt.want)
			}
		}
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 3 {
			t.Errorf("%d rows (%v), want 3", n, err)
		}
	})
}

// TestPlaceholders checks the rule of the package doc: $n parameters, in
// increasing order of first appearance and reused, bind the same way on
// both engines; SQLite also binds them out of order, by number.
func TestPlaceholders(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		db := e.NewDB(t)
		if _, err := db.ExecContext(ctx, `CREATE TABLE p (a TEXT, b BIGINT, c TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO p (a, b, c) VALUES ($1, $2, $1), ($3, $2, $4)`, "x", 5, "y", "z"); err != nil {
			t.Fatal(err)
		}
		rows, err := db.QueryContext(ctx, `SELECT a, b, c FROM p WHERE (a = $1 AND b >= $2) OR (c = $3 AND b = $2) ORDER BY a`, "x", 5, "z")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var a, c string
			var b int64
			if err := rows.Scan(&a, &b, &c); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s/%d/%s", a, b, c))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if want := "[x/5/x y/5/z]"; fmt.Sprint(got) != want {
			t.Errorf("got %v, want %s", got, want)
		}
		// Out of order: bound by number on both (not relied upon).
		var a, c string
		if err := db.QueryRowContext(ctx, `SELECT a, c FROM p WHERE c = $2 AND a = $1`, "y", "z").Scan(&a, &c); err != nil {
			t.Fatal(err)
		}
		if a != "y" || c != "z" {
			t.Errorf("out of order: got %s, %s; want y, z", a, c)
		}
	})
}

func TestMigrate(t *testing.T) {
	ms := []store.Migration{
		{SQL: `CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE b (id INTEGER PRIMARY KEY)`},
		{SQL: `INSERT INTO a (id, v) VALUES (1, 'sqlite')`, Postgres: `INSERT INTO a (id, v) VALUES (1, 'postgres')`},
		{}, // a retired step
	}
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		db := e.NewDB(t)
		if err := db.Migrate(ctx, "test", ms[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO b (id) VALUES (7)`); err != nil {
			t.Fatalf("both statements of the first migration ran? %v", err)
		}
		for range 2 { // the second time, nothing to do
			if err := db.Migrate(ctx, "test", ms); err != nil {
				t.Fatal(err)
			}
		}
		var v string
		if err := db.QueryRowContext(ctx, `SELECT v FROM a WHERE id = 1`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != e.Name {
			t.Errorf("the %s variant did not run: v = %q", e.Name, v)
		}
		var version int
		if err := db.QueryRowContext(ctx, `SELECT version FROM shoal_migrations WHERE name = $1`, "test").Scan(&version); err != nil {
			t.Fatal(err)
		}
		if version != 3 {
			t.Errorf("version %d, want 3", version)
		}
		// Another list in the same database is independent.
		if err := db.Migrate(ctx, "other", []store.Migration{{SQL: `CREATE TABLE c (id INTEGER)`}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx, "test", ms[:2]); err == nil {
			t.Error("Migrate with fewer migrations than applied: no error")
		}
		// A failing migration leaves the last good version, and its
		// partial work rolled back.
		bad := append(ms[:3:3], store.Migration{SQL: `CREATE TABLE d (id INTEGER); INSERT INTO nowhere VALUES (1)`})
		if err := db.Migrate(ctx, "test", bad); err == nil {
			t.Fatal("failing migration: no error")
		}
		if _, err := db.ExecContext(ctx, `CREATE TABLE d (id INTEGER)`); err != nil {
			t.Errorf("the failed migration's first statement was kept: %v", err)
		}
	})
}

// TestMigrateConcurrent starts 8 "instances" at once, each with its own
// pool (on SQLite, as separate processes would), and checks that each
// migration ran once.
func TestMigrateConcurrent(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		where := e.Place(t)
		ms := []store.Migration{
			{SQL: `CREATE TABLE log (step INTEGER NOT NULL)`}, // fails if run twice
			{SQL: `INSERT INTO log (step) VALUES (1)`},
			{SQL: `CREATE TABLE t (id INTEGER); INSERT INTO log (step) VALUES (2)`},
			{SQL: `INSERT INTO log (step) VALUES (3)`},
		}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				db, err := e.Open(t.Context(), where)
				if err != nil {
					errs[i] = err
					return
				}
				defer db.Close()
				errs[i] = db.Migrate(t.Context(), "concurrent", ms)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		db := e.MustOpen(t, where)
		var n, distinct int
		if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT step) FROM log`).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != 3 || distinct != 3 {
			t.Errorf("log has %d rows, %d distinct; want 3, 3", n, distinct)
		}
	})
}

// TestTxConcurrentWriters runs read-modify-write transactions from
// several pools at once: none fails, none is lost.
func TestTxConcurrentWriters(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		where := e.Place(t)
		db := e.MustOpen(t, where)
		if _, err := db.ExecContext(ctx, `CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO counter VALUES (1, 0)`); err != nil {
			t.Fatal(err)
		}
		read := `SELECT n FROM counter WHERE id = 1`
		if e.Name == "postgres" {
			read += ` FOR UPDATE` // READ COMMITTED: lock what we will write
		}
		const writers, each = 6, 25
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range writers {
			db := e.MustOpen(t, where) // "another process"
			wg.Go(func() {
				for range each {
					err := db.Tx(ctx, func(tx *sql.Tx) error {
						var n int64
						if err := tx.QueryRowContext(ctx, read).Scan(&n); err != nil {
							return err
						}
						_, err := tx.ExecContext(ctx, `UPDATE counter SET n = $1 WHERE id = 1`, n+1)
						return err
					})
					if err != nil {
						failed.Add(1)
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		var n int64
		if err := db.QueryRow(`SELECT n FROM counter`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != writers*each {
			t.Errorf("counter = %d, want %d (%d transactions failed)", n, writers*each, failed.Load())
		}
	})
}

// TestOnce starts 8 "instances" at once, each with its own pool, that
// each call Once: one fills, the others find its marker. A fill that
// fails takes its marker with it.
func TestOnce(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		where := e.Place(t)
		db := e.MustOpen(t, where)
		for _, table := range []string{`marks (name TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)`, `filled (instance INTEGER NOT NULL)`} {
			if _, err := db.ExecContext(ctx, `CREATE TABLE `+table); err != nil {
				t.Fatal(err)
			}
		}
		const marker = `INSERT INTO marks (name, n) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`
		errBoom := errors.New("boom")
		ran, err := db.Once(ctx, marker, []any{"dataset", 1}, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO filled (instance) VALUES (-1)`); err != nil {
				return err
			}
			return errBoom
		})
		if ran || err != errBoom {
			t.Fatalf("a failing fill: Once = %v, %v; want false, fill's error", ran, err)
		}
		var wg sync.WaitGroup
		rans := make([]bool, 8)
		for i := range rans {
			db := e.MustOpen(t, where) // "another process"
			wg.Go(func() {
				ran, err := db.Once(ctx, marker, []any{"dataset", 1}, func(tx *sql.Tx) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO filled (instance) VALUES ($1)`, i)
					return err
				})
				if err != nil {
					t.Error(err)
				}
				rans[i] = ran
			})
		}
		wg.Wait()
		var n, by int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(instance), -1) FROM filled`).Scan(&n, &by); err != nil {
			t.Fatal(err)
		}
		reported := 0
		for _, ran := range rans {
			if ran {
				reported++
			}
		}
		if n != 1 || by < 0 || !rans[by] || reported != 1 {
			t.Errorf("%d fills (the first by %d), Once reported %v; want one, by the one that reported it", n, by, rans)
		}
	})
}

// TestTxRollback: fn's error rolls back and is returned as is; a panic
// rolls back and goes on.
func TestTxRollback(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		db := e.NewDB(t)
		if _, err := db.ExecContext(ctx, `CREATE TABLE r (id INTEGER)`); err != nil {
			t.Fatal(err)
		}
		errBoom := errors.New("boom")
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO r VALUES (1)`); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Errorf("Tx returned %v, want fn's error as is", err)
		}
		func() {
			defer func() { recover() }()
			db.Tx(ctx, func(tx *sql.Tx) error {
				tx.ExecContext(ctx, `INSERT INTO r VALUES (2)`)
				panic("boom")
			})
		}()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM r`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows after rolled-back transactions, want 0", n)
		}
		// The DB is still usable (the writer lock was released).
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := db.Tx(tctx, func(tx *sql.Tx) error { return nil }); err != nil {
			t.Error(err)
		}
	})
}

// TestPostgresDeadlockRetried makes two transactions lock two rows in
// opposite orders: PostgreSQL aborts one (40P01), Tx runs it again (as
// often as it deadlocks), both commit.
func TestPostgresDeadlockRetried(t *testing.T) {
	e := storetest.PostgreSQL
	ctx := t.Context()
	where := e.Place(t)
	db := e.MustOpen(t, where)
	if _, err := db.ExecContext(ctx, `CREATE TABLE d (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO d VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	var both sync.WaitGroup // each holds its first row before taking the second
	both.Add(2)
	var runs atomic.Int64
	var wg sync.WaitGroup
	for _, order := range [][2]int{{1, 2}, {2, 1}} {
		db := e.MustOpen(t, where)
		wg.Go(func() {
			first := true
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				runs.Add(1)
				for i, id := range order {
					if _, err := tx.ExecContext(ctx, `UPDATE d SET n = n + 1 WHERE id = $1`, id); err != nil {
						return err
					}
					if i == 0 && first {
						first = false
						both.Done()
						both.Wait()
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var sum int
	if err := db.QueryRow(`SELECT SUM(n) FROM d`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	// At least 3 runs: one was aborted and run again. Maybe more: the
	// aborted one's retry can take its first row again before the other
	// transaction, woken by the abort, gets it, and deadlock a second time.
	if sum != 4 || runs.Load() < 3 {
		t.Errorf("sum %d after %d runs of fn, want 4 after at least 3", sum, runs.Load())
	}
}
