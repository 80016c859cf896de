package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// queued waits until n Tx calls wait in db's queue.
func queued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.queueMu.Lock()
		got := len(db.queue)
		db.queueMu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Tx calls queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// groupTable is the table of the group commit tests.
const groupTable = `CREATE TABLE t (name TEXT NOT NULL PRIMARY KEY)`

// openTest opens a SQLite DB in t's temporary folder, closed when t ends,
// and runs the statements of schema on it.
func openTest(t *testing.T, schema ...string) *DB {
	t.Helper()
	db, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range schema {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// TestGroupCommit: the Tx calls that wait while another holds the lock
// run in one transaction; each fn's failure, panic or ended context
// touches its own writes only.
func TestGroupCommit(t *testing.T) {
	db := openTest(t, groupTable)
	hold := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Tx(t.Context(), func(tx *sql.Tx) error {
			<-hold
			_, err := tx.Exec(`INSERT INTO t VALUES ('first')`)
			return err
		})
	}()
	for len(db.writerLock()) == 0 { // first holds the lock
		time.Sleep(time.Millisecond)
	}

	var mu sync.Mutex
	txs := map[*sql.Tx]int{} // the transactions the fns ran in
	insert := func(name string) func(*sql.Tx) error {
		return func(tx *sql.Tx) error {
			mu.Lock()
			txs[tx]++
			mu.Unlock()
			_, err := tx.Exec(`INSERT INTO t VALUES ($1)`, name)
			return err
		}
	}
	boom := errors.New("boom")
	gone, cancel := context.WithCancel(t.Context())
	tests := []struct {
		name string
		ctx  context.Context
		fn   func(*sql.Tx) error
		want string // in the error; "" for none, "panic" for a panic
	}{
		{"a", t.Context(), insert("a"), ""},
		{"fails", t.Context(), func(tx *sql.Tx) error { insert("fails")(tx); return boom }, "boom"},
		{"b", t.Context(), insert("b"), ""},
		{"panics", t.Context(), func(tx *sql.Tx) error { insert("panics")(tx); panic("bug") }, "panic"},
		{"cancelled", gone, insert("cancelled"), "context canceled"},
		{"c", t.Context(), insert("c"), ""},
		{"sees a", t.Context(), func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRow(`SELECT COUNT(*) FROM t WHERE name = 'a'`).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("a's row: %d, %v", n, err)
			}
			return insert("sees a")(tx)
		}, ""},
	}
	errs := make([]string, len(tests))
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					errs[i] = "panic"
				}
			}()
			if err := db.Tx(tt.ctx, tt.fn); err != nil {
				errs[i] = err.Error()
			}
		})
		queued(t, db, i+1) // in this order
	}
	cancel() // "cancelled" leaves the queue
	close(hold)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if tt.want == "" && errs[i] != "" || tt.want != "" && !strings.Contains(errs[i], tt.want) {
			t.Errorf("%s: error %q, want %q", tt.name, errs[i], tt.want)
		}
	}
	if len(txs) != 1 {
		t.Errorf("the fns ran in %d transactions, want 1: %v", len(txs), txs)
	}
	rows, err := db.Query(`SELECT name FROM t ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	if got, want := fmt.Sprint(names), "[a b c first sees a]"; got != want {
		t.Errorf("rows %s, want %s", got, want)
	}
}

// TestGroupLost: an fn that ends the transaction under the group (as an
// interrupted statement does in SQLite) makes the others run again in a
// new one; none runs outside a transaction.
func TestGroupLost(t *testing.T) {
	db := openTest(t, groupTable)
	hold := make(chan struct{})
	go db.Tx(t.Context(), func(*sql.Tx) error { <-hold; return nil })
	for len(db.writerLock()) == 0 {
		time.Sleep(time.Millisecond)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	fns := []struct {
		name string
		fn   func(tx *sql.Tx) error
	}{
		{"before", nil},
		{"ender", func(tx *sql.Tx) error {
			mu.Lock()
			n := runs["ender"]
			mu.Unlock()
			if n == 1 {
				_, err := tx.Exec(`ROLLBACK`) // the first time only
				return err
			}
			return nil
		}},
		{"after", nil},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, f := range fns {
		wg.Go(func() {
			errs[i] = db.Tx(t.Context(), func(tx *sql.Tx) error {
				mu.Lock()
				runs[f.name]++
				mu.Unlock()
				if f.fn != nil {
					return f.fn(tx)
				}
				_, err := tx.Exec(`INSERT INTO t VALUES ($1)`, f.name)
				return err
			})
		})
		queued(t, db, i+1)
	}
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", fns[i].name, err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d rows (%v), want 2: before and after, once each", n, err)
	}
	if runs["before"] != 2 || runs["ender"] != 2 || runs["after"] != 1 {
		t.Errorf("runs %v: want before and ender twice (the group was lost), after once (not outside it)", runs)
	}
}
