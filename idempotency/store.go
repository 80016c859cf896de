package idempotency

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shoal-dev/shoal/store"
)

// Table is the table a Store keeps its keys in, in the service's own
// database.
const Table = "shoal_idempotency"

// migrationName is the list of the package's migrations in the store's
// shoal_migrations table (store.DB.Migrate).
const migrationName = "idempotency"

// schema is Table's history, applied by Migrate under the store's
// migration lock. Times are Unix milliseconds in BIGINT, and parameters
// are $n, which SQLite and PostgreSQL both accept.
//
// A row is a claim while status is 0 (lease_until and token say whose, and
// until when), and an answer once status is set; expires_at is when it is
// forgotten either way. Keys are unique per principal (caller, subject).
//
// The first migration drops the table of earlier builds (created outside
// the migration list, with keys shared by every caller): its keys cannot
// be told apart by principal, so they are forgotten, and a retry of a
// write answered before the upgrade runs again. On PostgreSQL it also
// replaces a table a service created itself with body BYTEA (the old
// Migrate's BLOB is SQLite's).
var schema = []store.Migration{{
	SQL: `DROP TABLE IF EXISTS ` + Table + `;
		CREATE TABLE ` + Table + ` (` + columns("BLOB") + `);
		CREATE INDEX ` + Table + `_expires ON ` + Table + ` (expires_at)`,
	Postgres: `DROP TABLE IF EXISTS ` + Table + `;
		CREATE TABLE ` + Table + ` (` + columns("BYTEA") + `);
		CREATE INDEX ` + Table + `_expires ON ` + Table + ` (expires_at)`,
}}

// columns are Table's, with body of type blob.
func columns(blob string) string {
	return `
		caller       TEXT    NOT NULL,
		subject      TEXT    NOT NULL,
		idem_key     TEXT    NOT NULL,
		fingerprint  TEXT    NOT NULL,
		token        TEXT    NOT NULL,
		status       INTEGER NOT NULL,
		lease_until  BIGINT  NOT NULL,
		expires_at   BIGINT  NOT NULL,
		content_type TEXT    NOT NULL,
		body         ` + blob + `,
		PRIMARY KEY (caller, subject, idem_key)`
}

// purgeBatch bounds the rows one purge statement deletes, so that a
// backlog never holds SQLite's write lock for long.
const purgeBatch = 500

// Store keeps idempotency keys, and the answers given for them, in a table
// of the service's own database. It is safe for concurrent use, and several
// instances of a service may share one database: they coordinate through
// it alone.
type Store struct {
	db  *store.DB
	cfg Config
	log *slog.Logger
}

// New returns a Store over db, which the service opened (store.Open) and
// still owns (Store never closes it). It does no I/O: call Migrate before
// serving. Handlers using Claim.Complete write through db.Tx (or begin
// IMMEDIATE transactions on SQLite, as store.Open's do).
func New(db *store.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, errors.New("idempotency: nil *store.DB")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Store{db: db, cfg: cfg, log: cfg.Logger}, nil
}

// Migrate creates or updates the table (migration list "idempotency"),
// under the store's migration lock: instances starting at once may all
// call it, on SQLite or PostgreSQL.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.db.Migrate(ctx, migrationName, schema); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

// Run purges expired keys now and then every PurgeInterval, until ctx ends;
// then it returns nil. A failed purge is logged and tried again at the next
// interval. Any number of instances may run it on one database.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		if n, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("idempotency: purging expired keys", "err", err, "purged", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Purge deletes the keys that expired before now, in batches, and returns
// how many it deleted.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := s.write(ctx, s.db.TxNoSync, "purge", `DELETE FROM `+Table+` WHERE (caller, subject, idem_key) IN
			(SELECT caller, subject, idem_key FROM `+Table+` WHERE expires_at <= $1 LIMIT $2)`,
			millis(time.Now()), purgeBatch)
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

// keyRef names a key: the key a principal sent.
type keyRef struct {
	caller, subject, key string
}

func refOf(p Principal, key string) keyRef { return keyRef{p.Caller, p.Subject, key} }

// record is a row of Table.
type record struct {
	fingerprint string
	token       string
	status      int // 0: claimed, not answered yet
	leaseUntil  int64
	expiresAt   int64
	contentType string
	body        []byte
}

// claimed is what acquire found: a claim of this attempt, or the answer of
// an earlier one.
type claimed struct {
	token      string
	leaseUntil time.Time
	answer     *record
}

// errKeyReused: the key is on record for a different request.
var errKeyReused = errors.New("idempotency key used for a different request")

// errInProgress: the request ended while another attempt held its key.
var errInProgress = errors.New("idempotency key held by another attempt")

// Polling of a key claimed by another attempt: fast at first (a hedged
// twin usually finishes within milliseconds of the first), then easing off.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// acquire claims key for a request with fingerprint fp, or returns the
// answer already on record for it. While another live attempt holds the
// key, it polls until that attempt answers (the answer is returned), gives
// the key up (acquire claims it), or its lease ends (acquire takes it over).
// It fails with errKeyReused, or errInProgress (wrapping ctx's error) when
// ctx ends while it waits.
func (s *Store) acquire(ctx context.Context, ref keyRef, fp string, deadline time.Time) (claimed, error) {
	token := rand.Text()
	lease := func() time.Time {
		until := time.Now().Add(s.cfg.Lease)
		if !deadline.IsZero() && deadline.Before(until) {
			until = deadline
		}
		// As stored: the handler's deadline is not later than what
		// waiters see.
		return time.UnixMilli(millis(until))
	}
	// Most keys are new: try the insert first.
	until := lease()
	ok, err := s.insert(ctx, ref, fp, token, until)
	if err != nil || ok {
		return claimed{token: token, leaseUntil: until}, err
	}
	wait := pollMin
	for {
		rec, found, err := s.lookup(ctx, ref)
		if err != nil && ctx.Err() != nil {
			return claimed{}, fmt.Errorf("%w: %w", errInProgress, context.Cause(ctx))
		}
		if err != nil {
			return claimed{}, err
		}
		now := millis(time.Now())
		switch {
		case !found: // answered with 5xx, or purged, just now
			until := lease()
			if ok, err := s.insert(ctx, ref, fp, token, until); err != nil || ok {
				return claimed{token: token, leaseUntil: until}, err
			}
			continue
		case rec.expiresAt <= now || rec.status == 0 && rec.leaseUntil <= now && rec.fingerprint == fp:
			until := lease()
			if ok, err := s.takeOver(ctx, ref, fp, token, until); err != nil || ok {
				return claimed{token: token, leaseUntil: until}, err
			}
			continue
		case rec.fingerprint != fp:
			return claimed{}, errKeyReused
		case rec.status != 0:
			return claimed{answer: &rec}, nil
		}
		// Another attempt holds the key: wait, at most until its lease ends.
		d := min(wait, time.Duration(rec.leaseUntil-now)*time.Millisecond)
		wait = min(2*wait, pollMax)
		t := time.NewTimer(max(d, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return claimed{}, fmt.Errorf("%w: %w", errInProgress, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// insert claims a key nobody has; false if it is on record.
func (s *Store) insert(ctx context.Context, ref keyRef, fp, token string, leaseUntil time.Time) (bool, error) {
	return s.writeOne(ctx, s.db.TxNoSync, "claim", `INSERT INTO `+Table+`
		(caller, subject, idem_key, fingerprint, token, status, lease_until, expires_at, content_type, body)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '', NULL)
		ON CONFLICT (caller, subject, idem_key) DO NOTHING`,
		ref.caller, ref.subject, ref.key, fp, token, millis(leaseUntil), s.expiry())
}

// takeOver claims a key whose record expired, or whose claim for the same
// request outlived its lease; false if another attempt got there first.
// The conditions are checked again in the statement: of several attempts
// that saw the lease end, one takes the key.
func (s *Store) takeOver(ctx context.Context, ref keyRef, fp, token string, leaseUntil time.Time) (bool, error) {
	return s.writeOne(ctx, s.db.TxNoSync, "take over", `UPDATE `+Table+`
		SET fingerprint = $1, token = $2, status = 0, lease_until = $3, expires_at = $4, content_type = '', body = NULL
		WHERE caller = $5 AND subject = $6 AND idem_key = $7
		AND (expires_at <= $8 OR (status = 0 AND lease_until <= $8 AND fingerprint = $1))`,
		fp, token, millis(leaseUntil), s.expiry(), ref.caller, ref.subject, ref.key, millis(time.Now()))
}

// lookup reads ref's record; found is false if there is none.
func (s *Store) lookup(ctx context.Context, ref keyRef) (rec record, found bool, err error) {
	err = retry(ctx, func() error {
		return s.db.QueryRowContext(ctx, `SELECT fingerprint, token, status, lease_until, expires_at, content_type, body
			FROM `+Table+` WHERE caller = $1 AND subject = $2 AND idem_key = $3`, ref.caller, ref.subject, ref.key).
			Scan(&rec.fingerprint, &rec.token, &rec.status, &rec.leaseUntil, &rec.expiresAt, &rec.contentType, &rec.body)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("idempotency: lookup: %w", err)
	}
	return rec, true, nil
}

// complete records the answer to ref's claim held by token; false if the
// claim is no longer token's (taken over, or already answered).
// It writes in tx, the handler's transaction (Claim.Complete), or in one
// of its own if tx is nil.
func (s *Store) complete(ctx context.Context, tx *sql.Tx, ref keyRef, token string, status int, contentType string, body []byte) (bool, error) {
	if body == nil {
		body = []byte{} // NULL marks a claim; an answer has a body, maybe empty
	}
	const query = `UPDATE ` + Table + `
		SET status = $1, content_type = $2, body = $3, expires_at = $4
		WHERE caller = $5 AND subject = $6 AND idem_key = $7 AND token = $8 AND status = 0`
	args := []any{status, contentType, body, s.expiry(), ref.caller, ref.subject, ref.key, token}
	if tx == nil {
		return s.writeOne(ctx, s.db.Tx, "record the answer", query, args...)
	}
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("idempotency: record the answer: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("idempotency: record the answer: %w", err)
	}
	return n == 1, nil
}

// release gives ref up if token still holds it unanswered, so that the
// next attempt runs again.
func (s *Store) release(ctx context.Context, ref keyRef, token string) (bool, error) {
	return s.writeOne(ctx, s.db.TxNoSync, "release", `DELETE FROM `+Table+` WHERE caller = $1 AND subject = $2 AND idem_key = $3 AND token = $4 AND status = 0`,
		ref.caller, ref.subject, ref.key, token)
}

// writeOne is write for a statement on one key: it reports whether the
// statement changed its row.
func (s *Store) writeOne(ctx context.Context, inTx txFunc, what, query string, args ...any) (bool, error) {
	n, err := s.write(ctx, inTx, what, query, args...)
	return n == 1, err
}

// txFunc runs a transaction: store.DB.Tx, or TxNoSync for the writes
// whose loss in a power cut is harmless: claims, take-overs and releases
// (the requests they served died with the power, and a lost claim only
// lets a retry run the request, as after its lease) and purges. Answers
// are recorded with Tx.
type txFunc func(context.Context, func(*sql.Tx) error) error

// write runs a statement in a transaction of its own, with inTx, and
// returns how many rows it changed. store.DB.Tx and TxNoSync queue it
// behind the process's other writers, in order, and retry it while the
// database is busy (store.Retryable) for as long as ctx lasts. The claims
// must not be left to SQLite's busy handler instead: it polls with sleeps
// of up to 100 ms, and the handlers' transactions, queued by Tx, would
// keep the lock from it for as long as requests keep coming.
func (s *Store) write(ctx context.Context, inTx txFunc, what, query string, args ...any) (int64, error) {
	var n int64
	err := inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("idempotency: %s: %w", what, err)
	}
	return n, nil
}

// retry runs f, a read, until it succeeds, fails with an error that is
// not store.Retryable, or ctx ends (then f's last error is returned). In
// WAL mode reads seldom wait; they may while a checkpoint resets the log.
func retry(ctx context.Context, f func() error) error {
	wait := pollMin
	for {
		err := f()
		if err == nil || !store.Retryable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

func (s *Store) expiry() int64 { return millis(time.Now().Add(s.cfg.TTL)) }

func millis(t time.Time) int64 { return t.UnixMilli() }
