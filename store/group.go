package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// Group commit (SQLite). A commit with synchronous FULL waits for the disk
// while it holds the file's write lock, and under load the wait is as
// long as the scheduler takes to run the writer again: one transaction at
// a time, writers queue behind those waits. So the Tx calls of a process
// queue here, and whoever gets the write lock runs every queued fn of its
// kind (Tx or TxNoSync) in its transaction, each in a savepoint, and
// commits once: the more writers wait, the more one commit carries.

// maxGroup bounds the fns one transaction runs, so that a group never
// holds the lock for long.
const maxGroup = 64

// errGroupLost fails the fns of a group whose transaction ended under
// them: SQLite rolls the whole transaction back when a statement is
// interrupted (an fn's context ended) or fails in some ways (a full
// disk). It is not theirs: retry treats it as a lost race.
var errGroupLost = errors.New("store: the group's transaction was rolled back by another fn's failure")

// member is a Tx waiting to run in a group.
type member struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	sync bool
	// done gets the outcome once the group ran; size 1, so the leader
	// never waits on it.
	done chan outcome
}

// outcome is what a member's Tx returns: err, or a panic of its fn to
// raise again on its own goroutine.
type outcome struct {
	err      error
	panicked bool
	panic    any
}

// group runs fn in a transaction with other queued fns of its kind, or
// alone, and returns its error once the transaction is over.
func (db *DB) group(ctx context.Context, sync bool, fn func(*sql.Tx) error) error {
	writer := db.writerLock()
	m := &member{ctx: ctx, fn: fn, sync: sync, done: make(chan outcome, 1)}
	db.queueMu.Lock()
	db.queue = append(db.queue, m)
	db.queueMu.Unlock()
	var o outcome
	select {
	case o = <-m.done: // another leader ran it
	case writer <- struct{}{}:
		g := db.take(m)
		if g != nil {
			db.run(g)
		}
		<-writer
		// Run by this leader, or by the last one, which finished
		// before this one got the lock.
		o = <-m.done
	case <-ctx.Done():
		if db.drop(m) {
			return context.Cause(ctx)
		}
		o = <-m.done // a leader has it: its fn runs, or ran
	}
	if o.panicked {
		panic(o.panic)
	}
	return o.err
}

// writerLock returns db.writer, made on first use.
func (db *DB) writerLock() chan struct{} {
	db.writerOnce.Do(func() { db.writer = make(chan struct{}, 1) })
	return db.writer
}

// take removes m and the other queued members of its kind (up to
// maxGroup in all) from the queue and returns them, in the order they
// came (so an fn sees the writes of those that called Tx before it); nil
// if m was taken already.
func (db *DB) take(m *member) []*member {
	db.queueMu.Lock()
	defer db.queueMu.Unlock()
	if !slices.Contains(db.queue, m) {
		return nil
	}
	var g []*member
	rest := db.queue[:0]
	others := 0
	for _, q := range db.queue {
		switch {
		case q == m:
			g = append(g, q)
		case q.sync == m.sync && others < maxGroup-1:
			g = append(g, q)
			others++
		default:
			rest = append(rest, q)
		}
	}
	clear(db.queue[len(rest):])
	db.queue = rest
	return g
}

// drop removes m from the queue if no leader took it; it reports whether
// it did.
func (db *DB) drop(m *member) bool {
	db.queueMu.Lock()
	defer db.queueMu.Unlock()
	i := slices.Index(db.queue, m)
	if i < 0 {
		return false
	}
	db.queue = slices.Delete(db.queue, i, i+1)
	return true
}

// run runs group g in one transaction and sends each member its outcome.
// The caller holds the writer lock.
func (db *DB) run(g []*member) {
	pool := db.DB
	if !g[0].sync && db.nosync != nil { // all of g's kind
		pool = db.nosync
	}
	outcomes := make([]outcome, len(g))
	err := func() error {
		// Not a member's context: the transaction is the group's.
		tx, err := pool.BeginTx(context.WithoutCancel(g[0].ctx), nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() // after Commit, a no-op (sql.ErrTxDone)
		// Alone: no savepoint needed.
		if len(g) == 1 {
			if err := g[0].ctx.Err(); err != nil {
				outcomes[0].err = context.Cause(g[0].ctx)
				return nil
			}
			if outcomes[0] = call(g[0], tx); outcomes[0].failed() {
				return nil // rolled back; its own error is its outcome
			}
			return tx.Commit()
		}
		for i, m := range g {
			if err := m.ctx.Err(); err != nil {
				outcomes[i].err = context.Cause(m.ctx)
				continue
			}
			if _, err := tx.Exec(`SAVEPOINT shoal_member`); err != nil {
				return fmt.Errorf("%w: %w", errGroupLost, err)
			}
			outcomes[i] = call(m, tx)
			end := `RELEASE shoal_member`
			if outcomes[i].failed() {
				end = `ROLLBACK TO shoal_member; RELEASE shoal_member`
			}
			// Fails if the transaction is gone: stop before the next fn
			// runs outside it.
			if _, err := tx.Exec(end); err != nil {
				return fmt.Errorf("%w: %w", errGroupLost, err)
			}
		}
		return tx.Commit()
	}()
	for i, m := range g {
		o := outcomes[i]
		if err != nil && !o.failed() {
			o.err = err // the group's begin or commit failed: so did this fn
		}
		m.done <- o
	}
}

// call runs m's fn in tx, recovering a panic for m's goroutine.
func call(m *member, tx *sql.Tx) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = outcome{panicked: true, panic: p}
		}
	}()
	return outcome{err: m.fn(tx)}
}

func (o outcome) failed() bool { return o.err != nil || o.panicked }
