package main

// Sign-in backoff per account. The gateway limits sign-ins per client
// address, per gateway instance: an attacker with many addresses, or
// patience, could still try password after password on one account. So
// each email's failures in a row are counted in the service's database
// (shared by all instances, so that spreading attempts over them gains
// nothing), and after freeFailures of them the account waits, twice as
// long after each further failure, up to maxWait. While it waits, sign-ins
// for it are answered 429 with Retry-After, before any password check:
// the right password does not get through either, or a guess could be
// confirmed during the wait. A success clears the count.
//
// Emails without an account are counted too, so that the answers say
// nothing about which accounts exist. The price of the scheme is that
// anyone can make an account wait by failing on purpose; the wait is
// bounded (maxWait) and the gateway's per-client limit bounds how fast
// they can.

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

const (
	// freeFailures wrong passwords in a row cost no wait: typos.
	freeFailures = 5
	// firstWait follows the first failure past freeFailures; each one
	// after doubles it.
	firstWait = time.Second
	// maxWait caps the wait.
	maxWait = 15 * time.Minute
	// forgetAfter: failures this long after the last one no longer count,
	// and their record is purged.
	forgetAfter = time.Hour
)

// backoffWait is how long an account waits after failures in a row.
func backoffWait(failures int64) time.Duration {
	n := failures - freeFailures
	switch {
	case n <= 0:
		return 0
	case n > 20: // far past maxWait; keeps the shift in range
		return maxWait
	}
	return min(firstWait<<(n-1), maxWait)
}

// signinBackoff is an email's record of failures.
type signinBackoff struct {
	failures int64
	until    time.Time // no sign-in before; zero when none is due
}

// backoff returns email's record; the zero record for an email without
// failures.
func (d *directory) backoff(ctx context.Context, email string) (signinBackoff, error) {
	var failures, until int64
	err := d.backoffStmt.QueryRowContext(ctx, email).Scan(&failures, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return signinBackoff{}, nil
	}
	if err != nil {
		return signinBackoff{}, err
	}
	return signinBackoff{failures: failures, until: time.UnixMilli(until)}, nil
}

// failed counts a failed sign-in for email at now and returns until when
// it must wait. The count is incremented in one statement, so that
// failures at once on several instances each count; failures older than
// forgetAfter start over, and are purged. Bookkeeping, committed without
// waiting for the disk: a count lost in a power cut costs little.
func (d *directory) failed(ctx context.Context, email string, now time.Time) (time.Time, error) {
	var until time.Time
	err := d.db.TxNoSync(ctx, func(tx *sql.Tx) error {
		stale := now.Add(-forgetAfter).UnixMilli()
		var failures int64
		err := tx.QueryRowContext(ctx, `INSERT INTO signin_failures (email, failures, last_ms, until_ms) VALUES ($1, 1, $2, 0)
			ON CONFLICT (email) DO UPDATE SET
				failures = CASE WHEN signin_failures.last_ms < $3 THEN 1 ELSE signin_failures.failures + 1 END,
				last_ms = excluded.last_ms
			RETURNING failures`, email, now.UnixMilli(), stale).Scan(&failures)
		if err != nil {
			return err
		}
		if wait := backoffWait(failures); wait > 0 {
			until = now.Add(wait)
			if _, err := tx.ExecContext(ctx, `UPDATE signin_failures SET until_ms = $1 WHERE email = $2`, until.UnixMilli(), email); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM signin_failures WHERE last_ms < $1`, stale)
		return err
	})
	return until, err
}

// succeeded clears email's failures.
func (d *directory) succeeded(ctx context.Context, email string) error {
	return d.db.TxNoSync(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM signin_failures WHERE email = $1`, email)
		return err
	})
}
