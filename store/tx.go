package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff between attempts of a transaction that lost a race: jittered,
// doubling from retryMin to retryMax.
const (
	retryMin = 2 * time.Millisecond
	retryMax = 250 * time.Millisecond
)

// Tx runs fn in a transaction and commits it if fn returns nil; if fn
// fails (or panics) the transaction is rolled back and fn's error returned
// as it is.
//
// When the transaction loses a race (Retryable: SQLite busy or locked,
// PostgreSQL serialization failure or deadlock), whether in fn, at begin or
// at commit, Tx rolls back and runs fn again, after a jittered backoff,
// until it succeeds, fails otherwise, or ctx ends (then the error wraps
// ctx's error, and the last busy error if ctx ended between attempts). So
// fn must be safe to run more than once: only the writes of the attempt
// that commits take effect.
//
// On SQLite, a Tx begins IMMEDIATE: it holds the database's write lock
// from its start, so concurrent writers wait for each other (within a
// process, in turn; across processes, up to BusyTimeout per attempt)
// instead of failing when they first write. Keep transactions short, and do
// not use db (rather than tx) inside fn, nor nest Tx: on SQLite that waits
// for the lock fn itself holds. Reads outside transactions need no Tx: in
// WAL mode they never wait for writers.
//
// On SQLite, the Tx calls of a process that wait for the lock together
// commit together (group commit): their fns run one after another in one
// transaction, each in a savepoint of its own, and one commit (one fsync
// with synchronous FULL) covers them all. For fn nothing changes but
// that it sees the writes of the fns before it, as it would have run
// after them anyway; an fn that fails (or panics) rolls back its own
// writes only. A commit that fails fails every fn of the group, and each
// Tx decides alone whether to run its fn again.
//
// On PostgreSQL the isolation is the server's default (READ COMMITTED):
// guard read-then-write logic with row locks (SELECT … FOR UPDATE),
// conditional UPDATEs, or a unique constraint.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return retry(ctx, func() error { return db.txOnce(ctx, true, fn) })
}

// TxNoSync is Tx for bookkeeping whose last commits may be lost in a power
// cut or an operating system crash without harm, because it is redone or
// re-derived when missing: leases and claims, delivery marks, purges. Its
// commit does not wait for the disk (SQLite: a connection with
// synchronous NORMAL; PostgreSQL: synchronous_commit off for the
// transaction), which saves an fsync per commit where Config.Synchronous
// is FULL. The next Tx's commit syncs it too, so a power cut loses at most
// the TxNoSync commits after the last Tx, never a Tx commit, and never
// the file's consistency; a process crash (SIGKILL) loses nothing. Its
// writers take turns with Tx's. With Synchronous NORMAL or OFF it is Tx.
func (db *DB) TxNoSync(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return retry(ctx, func() error { return db.txOnce(ctx, false, fn) })
}

// Once runs fill once per database: in a transaction (Tx) whose first
// statement, marker, inserts a row that says fill has run (an INSERT …
// ON CONFLICT DO NOTHING, with args). It reports whether fill ran: where
// the row is there already, nothing is written. Of the processes that call
// it at once, exactly one runs fill; the others' inserts wait for its
// transaction (SQLite's write lock, PostgreSQL's lock on the row's key)
// and then find the row. If fill fails, the marker goes with its
// transaction, and a later call runs fill again. For what a database needs
// once, such as the dataset an example service writes at its first start.
func (db *DB) Once(ctx context.Context, marker string, args []any, fill func(tx *sql.Tx) error) (ran bool, err error) {
	err = db.Tx(ctx, func(tx *sql.Tx) error {
		ran = false // an earlier attempt's, rolled back
		res, err := tx.ExecContext(ctx, marker, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if err := fill(tx); err != nil {
			return err
		}
		ran = true
		return nil
	})
	return ran, err
}

func (db *DB) txOnce(ctx context.Context, sync bool, fn func(tx *sql.Tx) error) error {
	if db.Dialect == SQLite {
		return db.group(ctx, sync, fn)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op (sql.ErrTxDone)
	if !sync {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// retry runs f until it succeeds, fails with an error that is not
// Retryable, or ctx ends.
func retry(ctx context.Context, f func() error) error {
	wait := retryMin
	for {
		err := f()
		if err == nil || !Retryable(err) && !errors.Is(err, errGroupLost) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		}
		// Equal jitter: between half and all of wait, so that racing
		// attempts spread out.
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}
