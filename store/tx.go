package store

import (
	"context"
	"database/sql"
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
// On PostgreSQL the isolation is the server's default (READ COMMITTED):
// guard read-then-write logic with row locks (SELECT … FOR UPDATE),
// conditional UPDATEs, or a unique constraint.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return retry(ctx, func() error { return db.txOnce(ctx, fn) })
}

func (db *DB) txOnce(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if db.Dialect == SQLite {
		release, err := db.lockWriter(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op (sql.ErrTxDone)
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// lockWriter waits for this DB's turn to write (SQLite only), or for ctx.
func (db *DB) lockWriter(ctx context.Context) (release func(), err error) {
	db.writerOnce.Do(func() { db.writer = make(chan struct{}, 1) })
	select {
	case db.writer <- struct{}{}:
		return func() { <-db.writer }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// retry runs f until it succeeds, fails with an error that is not
// Retryable, or ctx ends.
func retry(ctx context.Context, f func() error) error {
	wait := retryMin
	for {
		err := f()
		if err == nil || !Retryable(err) {
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
