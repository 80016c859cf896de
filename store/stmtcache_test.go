package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// cacheSize sets the statement cache's size of the DBs opened after it,
// until t ends.
func cacheSize(t testing.TB, n int) {
	old := stmtCacheSize
	stmtCacheSize = n
	t.Cleanup(func() { stmtCacheSize = old })
}

// openCacheTest opens a SQLite DB whose table kv holds the rows 1..5.
func openCacheTest(t *testing.T) *DB {
	t.Helper()
	db := openTest(t, `CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
	for i := 1; i <= 5; i++ {
		if _, err := db.Exec(`INSERT INTO kv VALUES ($1, $2)`, i, "v"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// pin returns one of db's connections, until t ends.
func pin(t *testing.T, db *DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// inCache runs f with c's statement cache.
func inCache(t *testing.T, c *sql.Conn, f func(cc *cachingConn)) {
	t.Helper()
	if err := c.Raw(func(dc any) error {
		f(dc.(*cachingConn))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// cached returns c's cached statement of query, nil if none.
func cached(t *testing.T, c *sql.Conn, query string) (s *cachedStmt) {
	t.Helper()
	inCache(t, c, func(cc *cachingConn) { s = cc.stmts[query] })
	return s
}

// stmtMemory is the memory of the prepared statements of a connection of
// modernc.org/sqlite, finalized statements not counted.
func stmtMemory(t *testing.T, dc driver.Conn) int {
	t.Helper()
	n, _, err := dc.(sqlite.DBStatus).Status(sqlite.DBStatusStmtUsed, false)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ids reads the remaining ids of rows.
func ids(t *testing.T, rows *sql.Rows) []int {
	t.Helper()
	var r []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		r = append(r, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStmtCacheHits: a query run again on a connection runs the statement
// prepared the first time.
func TestStmtCacheHits(t *testing.T) {
	ctx := t.Context()
	c := pin(t, openCacheTest(t))
	const upsert = `INSERT INTO kv VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = excluded.v`
	const get = `SELECT v FROM kv WHERE id = $1`
	var first []*cachedStmt
	for i := range 20 {
		if _, err := c.ExecContext(ctx, upsert, i, "w"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := c.QueryRowContext(ctx, get, i).Scan(&v); err != nil || v != "w"+strconv.Itoa(i) {
			t.Fatalf("row %d: %q, %v; want %q", i, v, err, "w"+strconv.Itoa(i))
		}
		now := []*cachedStmt{cached(t, c, upsert), cached(t, c, get)}
		if slices.Contains(now, nil) {
			t.Fatalf("run %d: statements %v, want both cached", i, now)
		}
		if first == nil {
			first = now
		} else if !slices.Equal(now, first) {
			t.Fatalf("run %d: statements %v, want those prepared first %v (prepared again)", i, now, first)
		}
	}
	// A Tx of the pool too: one connection, its cached statements.
	db := openCacheTest(t)
	db.SetMaxOpenConns(1)
	var prepared []*cachedStmt
	for i := range 5 {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, upsert, i, "x"); err != nil {
				return err
			}
			var v string
			return tx.QueryRowContext(ctx, get, i).Scan(&v)
		})
		if err != nil {
			t.Fatal(err)
		}
		dc, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := []*cachedStmt{cached(t, dc, upsert), cached(t, dc, get)}
		dc.Close()
		if prepared == nil {
			prepared = now
		} else if !slices.Equal(now, prepared) {
			t.Fatalf("Tx %d: statements %v, want %v", i, now, prepared)
		}
	}
}

// TestStmtCacheOpenRows: while the rows of a cached statement are open, a
// second run of the same query in the transaction (database/sql allows
// it) gets a statement of its own, and neither run disturbs the other.
func TestStmtCacheOpenRows(t *testing.T) {
	ctx := t.Context()
	c := pin(t, openCacheTest(t))
	const q = `SELECT id FROM kv WHERE id > $1 ORDER BY id`
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	r1, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	if !r1.Next() {
		t.Fatal(r1.Err())
	}
	var id int
	if err := r1.Scan(&id); err != nil || id != 1 {
		t.Fatalf("first row %d, %v; want 1", id, err)
	}
	r2, err := tx.QueryContext(ctx, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, r2); !slices.Equal(got, []int{4, 5}) {
		t.Errorf("second query: %v, want [4 5]", got)
	}
	r2.Close()
	// Exec of the same text too (it drains the rows of a SELECT).
	if _, err := tx.ExecContext(ctx, q, 1); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, r1); !slices.Equal(got, []int{2, 3, 4, 5}) {
		t.Errorf("first query, the rest: %v, want [2 3 4 5]", got)
	}
	r1.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s := cached(t, c, q)
	if s == nil || s.rowsOpen {
		t.Fatalf("cached statement %+v, want one with its rows closed", s)
	}
	rows, err := c.QueryContext(ctx, q, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(t, rows); !slices.Equal(got, []int{5}) {
		t.Errorf("third query: %v, want [5]", got)
	}
	rows.Close()
	if now := cached(t, c, q); now != s {
		t.Errorf("third query ran statement %p, want the cached %p", now, s)
	}
}

// TestStmtCacheScripts: texts of several statements (or a ';' anywhere
// but at the end) run as the driver runs them, uncached.
func TestStmtCacheScripts(t *testing.T) {
	ctx := t.Context()
	c := pin(t, openCacheTest(t))
	const script = `CREATE TABLE s (x INTEGER); INSERT INTO s VALUES (1); INSERT INTO s VALUES (2)`
	if _, err := c.ExecContext(ctx, script); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.QueryRowContext(ctx, `SELECT COUNT(*) FROM s`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the script inserted %d rows (%v), want 2", n, err)
	}
	var v string
	if err := c.QueryRowContext(ctx, `SELECT 'a;b'`).Scan(&v); err != nil || v != "a;b" {
		t.Fatalf("SELECT 'a;b' = %q, %v", v, err)
	}
	if err := c.QueryRowContext(ctx, `SELECT 'c';`).Scan(&v); err != nil || v != "c" {
		t.Fatalf("SELECT 'c'; = %q, %v", v, err)
	}
	for q, want := range map[string]bool{script: false, `SELECT 'a;b'`: false, `SELECT 'c';`: true, `SELECT COUNT(*) FROM s`: true} {
		if got := cached(t, c, q) != nil; got != want {
			t.Errorf("%q cached: %v, want %v", q, got, want)
		}
	}
}

// TestStmtCacheBounded: a connection keeps its last used statements, up
// to the cache's size; one dropped while its rows are open is finalized
// when they close.
func TestStmtCacheBounded(t *testing.T) {
	cacheSize(t, 4)
	ctx := t.Context()
	c := pin(t, openCacheTest(t))
	run := func(i int) {
		t.Helper()
		var n int
		if err := c.QueryRowContext(ctx, `SELECT `+strconv.Itoa(i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d = %d, %v", i, n, err)
		}
	}
	keys := func() []string {
		var k []string
		inCache(t, c, func(cc *cachingConn) {
			if len(cc.stmts) != cc.lru.Len() {
				t.Errorf("%d statements in the map, %d in the list", len(cc.stmts), cc.lru.Len())
			}
			for e := cc.lru.Front(); e != nil; e = e.Next() {
				k = append(k, e.Value.(*cachedStmt).query)
			}
		})
		return k
	}
	for i := 1; i <= 10; i++ {
		run(i)
	}
	run(7)
	run(11)
	if got, want := keys(), []string{"SELECT 11", "SELECT 7", "SELECT 10", "SELECT 9"}; !slices.Equal(got, want) {
		t.Errorf("cached %q, want %q (most recently used first)", got, want)
	}

	const q = `SELECT id FROM kv ORDER BY id`
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	s := cached(t, c, q)
	for i := 20; i < 24; i++ { // drop q's statement
		run(i)
	}
	if s.elem != nil || slices.Contains(keys(), q) {
		t.Fatalf("%q still cached", q)
	}
	var open, closed int
	inCache(t, c, func(cc *cachingConn) { open = stmtMemory(t, cc.Unwrap()) })
	// The last Next closes the rows.
	if got := ids(t, rows); !slices.Equal(got, []int{2, 3, 4, 5}) {
		t.Errorf("rows of the dropped statement: %v, want [2 3 4 5]", got)
	}
	inCache(t, c, func(cc *cachingConn) { closed = stmtMemory(t, cc.Unwrap()) })
	if closed >= open {
		t.Errorf("statement memory %d bytes with the rows open, %d after: want the dropped statement finalized", open, closed)
	}
}

// TestStmtCacheErrors: a query that fails to prepare fails as the
// driver's own path fails it and is not cached; a statement whose run
// fails is dropped, and its query runs again.
func TestStmtCacheErrors(t *testing.T) {
	ctx := t.Context()
	c := pin(t, openCacheTest(t))
	_, err := c.ExecContext(ctx, `SELEKT 1`)
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_ERROR {
		t.Errorf("SELEKT 1: %v, want SQLite's syntax error", err)
	}
	if cached(t, c, `SELEKT 1`) != nil {
		t.Error("SELEKT 1 cached")
	}
	const insert = `INSERT INTO kv VALUES ($1, 'dup')`
	if _, err := c.ExecContext(ctx, insert, 6); err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecContext(ctx, insert, 6)
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CONSTRAINT {
		t.Errorf("second insert of 6: %v, want a constraint error", err)
	}
	if cached(t, c, insert) != nil {
		t.Error("the failed statement stayed cached")
	}
	if _, err := c.ExecContext(ctx, insert, 7); err != nil {
		t.Fatalf("insert after the failure: %v", err)
	}
}

// TestStmtCacheCancel: a cached statement interrupted by its context
// returns the context's error, and its query runs again after, cached.
func TestStmtCacheCancel(t *testing.T) {
	ctx := t.Context()
	db := openCacheTest(t)
	c := pin(t, db)
	// Counts to $1: seconds for 1e9.
	const count = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) SELECT COUNT(*) FROM c`
	for _, via := range []string{"QueryRow", "Exec"} {
		t.Run(via, func(t *testing.T) {
			runIt := func(ctx context.Context, n int) (int, error) {
				var got int
				var err error
				if via == "Exec" {
					_, err = c.ExecContext(ctx, count, n)
				} else {
					err = c.QueryRowContext(ctx, count, n).Scan(&got)
				}
				return got, err
			}
			if _, err := runIt(ctx, 10); err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := runIt(short, 1e9); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("interrupted run: %v, want the deadline", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("interrupted after %v", d)
			}
			got, err := runIt(ctx, 10)
			if err != nil || via == "QueryRow" && got != 10 {
				t.Fatalf("run after the interruption: %d, %v; want 10", got, err)
			}
			if cached(t, c, count) == nil {
				t.Error("not cached after the interruption")
			}
		})
	}
	// The pool's connections stay usable.
	var n int
	if err := db.QueryRowContext(ctx, count, 3).Scan(&n); err != nil || n != 3 {
		t.Fatalf("pool after the interruptions: %d, %v", n, err)
	}
}

// closeSpy records the statement memory of a connection when it closes.
type closeSpy struct {
	sqliteConn
	t      *testing.T
	atExit *int
}

func (s closeSpy) Close() error {
	*s.atExit = stmtMemory(s.t, s.sqliteConn)
	return s.sqliteConn.Close()
}

// driverConn returns modernc.org/sqlite's connector to a database in t's
// temporary folder, and a connection of the driver's from it.
func driverConn(t *testing.T) (driver.Connector, driver.Conn) {
	t.Helper()
	base, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "driver.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := base.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return base, c
}

// TestStmtCacheClose: closing a connection finalizes its statements
// before it closes the driver's.
func TestStmtCacheClose(t *testing.T) {
	ctx := t.Context()
	_, dc := driverConn(t)
	atExit := -1
	c := newCachingConn(closeSpy{dc.(sqliteConn), t, &atExit}, 8)
	for i := range 5 {
		rows, err := c.QueryContext(ctx, fmt.Sprintf("SELECT %d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if len(c.stmts) != 5 || stmtMemory(t, dc) == 0 {
		t.Fatalf("%d statements cached, %d bytes: want 5", len(c.stmts), stmtMemory(t, dc))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if atExit != 0 {
		t.Errorf("%d bytes of statements when the driver's connection closed, want 0", atExit)
	}
}

// TestStmtCacheInterfaces: the connections and rows of a cached
// connection implement the optional interfaces of database/sql that the
// driver's do (but the deprecated Execer and Queryer, which database/sql
// uses only without ExecerContext and QueryerContext), and
// modernc.org/sqlite's functions see through them.
func TestStmtCacheInterfaces(t *testing.T) {
	ctx := t.Context()
	base, raw := driverConn(t)
	defer raw.Close()
	wrapped, err := connector{Connector: base, size: 8}.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer wrapped.Close()
	same := func(what string, a, b any, ifaces ...reflect.Type) {
		t.Helper()
		for _, i := range ifaces {
			if x, y := reflect.TypeOf(a).Implements(i), reflect.TypeOf(b).Implements(i); x != y {
				t.Errorf("%s: the driver's implements %v: %v; the cache's: %v", what, i, x, y)
			}
		}
	}
	same("connection", raw, wrapped,
		reflect.TypeFor[driver.ConnBeginTx](), reflect.TypeFor[driver.ConnPrepareContext](),
		reflect.TypeFor[driver.ExecerContext](), reflect.TypeFor[driver.QueryerContext](),
		reflect.TypeFor[driver.Pinger](), reflect.TypeFor[driver.SessionResetter](),
		reflect.TypeFor[driver.Validator](), reflect.TypeFor[driver.NamedValueChecker]())
	query := func(c driver.Conn) driver.Rows {
		r, err := c.(driver.QueryerContext).QueryContext(ctx, `SELECT 1`, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rr, wr := query(raw), query(wrapped)
	defer rr.Close()
	defer wr.Close()
	same("rows", rr, wr,
		reflect.TypeFor[driver.RowsNextResultSet](), reflect.TypeFor[driver.RowsColumnTypeScanType](),
		reflect.TypeFor[driver.RowsColumnTypeDatabaseTypeName](), reflect.TypeFor[driver.RowsColumnTypeLength](),
		reflect.TypeFor[driver.RowsColumnTypeNullable](), reflect.TypeFor[driver.RowsColumnTypePrecisionScale]())

	// sqlite.Limit unwraps.
	db := openCacheTest(t)
	c := pin(t, db)
	if _, err := sqlite.Limit(c, sqlite3.SQLITE_LIMIT_LENGTH, -1); err != nil {
		t.Errorf("sqlite.Limit: %v", err)
	}
	if got := reflect.TypeOf(db.Driver()); got != reflect.TypeOf(&sqlite.Driver{}) {
		t.Errorf("Driver() is a %v, want modernc.org/sqlite's", got)
	}
}
