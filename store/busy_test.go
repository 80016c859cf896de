package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestTxRetriesBusy holds the write lock from "another process" longer
// than the busy timeout: the Tx fails busy, backs off, tries again, and
// commits once the lock is free, its fn having run more than once.
func TestTxRetriesBusy(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "busy.db")
	db, err := openSQLite(ctx, path, DefaultConfig(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	other, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	locked := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- other.Tx(ctx, func(tx *sql.Tx) error {
			close(locked)
			time.Sleep(300 * time.Millisecond)
			_, err := tx.Exec(`INSERT INTO t VALUES (1)`)
			return err
		})
	}()
	<-locked
	var runs atomic.Int64
	start := time.Now()
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		runs.Add(1)
		_, err := tx.Exec(`INSERT INTO t VALUES (2)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	// BEGIN IMMEDIATE fails busy before fn runs: retries show as time
	// waited past the busy timeout.
	if n != 2 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("%d rows after %v (fn ran %d times); want 2 after the holder's 300ms", n, time.Since(start), runs.Load())
	}
}

// TestTxGivesUp: while the lock stays taken, Tx retries until ctx ends and
// returns ctx's error (with the last busy error if ctx ended between
// attempts; the driver reports ctx's error alone if it ended during one).
func TestTxGivesUp(t *testing.T) {
	db := lockedDB(t, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	err := db.Tx(ctx, func(tx *sql.Tx) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Tx = %v, want the deadline", err)
	}
}

func TestRetryable(t *testing.T) {
	db := lockedDB(t, 0)
	_, busy := db.Exec(`CREATE TABLE x (id INTEGER)`)
	_, syntax := db.Exec(`SELEKT 1`)
	for _, c := range []struct {
		err  error
		want bool
	}{
		{busy, true},
		{fmt.Errorf("wrapped: %w", busy), true},
		{syntax, false},
		{errors.New("other"), false},
		{nil, false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// lockedDB opens a SQLite database with the given busy timeout, whose
// write lock another handle (as another process would) holds until the
// test ends.
func lockedDB(t *testing.T, busyTimeout time.Duration) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busy.db")
	db, err := openSQLite(t.Context(), path, DefaultConfig(), busyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	other, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	hold, err := other.BeginTx(t.Context(), nil) // IMMEDIATE: the write lock
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Rollback() })
	return db
}
