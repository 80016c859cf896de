package events

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// DeadLetter is a delivery given up on: its subscriber failed it
// OutboxConfig.MaxAttempts times, or for OutboxConfig.MaxAge. It stays,
// with its event, for OutboxConfig.DeadLetterRetention, to be inspected
// and redelivered.
type DeadLetter struct {
	Event     Event     `json:"event"`
	Service   string    `json:"service"`    // the subscriber
	Attempts  int       `json:"attempts"`   // all of them failed
	LastError string    `json:"last_error"` // of the last attempt
	DeadAt    time.Time `json:"dead_at"`
}

// DeadLetterFilter picks dead letters; empty fields match all.
type DeadLetterFilter struct {
	Topic   string `json:"topic"`
	Service string `json:"service"`
}

// where returns the SQL condition on dl (the dead letters) and e (their
// events) for f, after args: its parameters are numbered on from them.
func (f DeadLetterFilter) where(args ...any) (string, []any) {
	cond := "TRUE"
	if f.Topic != "" {
		args = append(args, f.Topic)
		cond += " AND e.topic = $" + strconv.Itoa(len(args))
	}
	if f.Service != "" {
		args = append(args, f.Service)
		cond += " AND dl.service = $" + strconv.Itoa(len(args))
	}
	return cond, args
}

// DeadLetters returns up to limit dead letters that f picks, the oldest
// first, from the database (all producer instances'). The same in SQL:
//
//	SELECT e.topic, dl.service, dl.attempts, dl.last_error, dl.dead_at, e.id, e.payload
//	FROM shoal_outbox_dead_letters dl JOIN shoal_outbox_events e ON e.id = dl.event_id
//	ORDER BY dl.dead_at;
func (o *Outbox) DeadLetters(ctx context.Context, f DeadLetterFilter, limit int) ([]DeadLetter, error) {
	cond, args := f.where()
	args = append(args, limit)
	rows, err := o.db.QueryContext(ctx, `SELECT e.id, e.topic, e.payload, e.created_at, dl.service, dl.attempts, dl.last_error, dl.dead_at
		FROM `+deadLettersTable+` dl JOIN `+eventsTable+` e ON e.id = dl.event_id
		WHERE `+cond+` ORDER BY dl.dead_at, e.id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("events: dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var dl DeadLetter
		var payload string
		var created, dead int64
		if err := rows.Scan(&dl.Event.ID, &dl.Event.Topic, &payload, &created, &dl.Service, &dl.Attempts, &dl.LastError, &dead); err != nil {
			return nil, fmt.Errorf("events: dead letters: %w", err)
		}
		dl.Event.Payload = []byte(payload)
		dl.Event.CreatedAt = time.UnixMilli(created).UTC()
		dl.DeadAt = time.UnixMilli(dead).UTC()
		out = append(out, dl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events: dead letters: %w", err)
	}
	return out, nil
}

// Redeliver moves the dead letters that f picks back to the outbox, due at
// once, with their attempts and MaxAge counted afresh, and returns how
// many. Use it once the subscriber is fixed. An event redelivered after
// the subscriber's inbox forgot its ID (InboxRetention) applies again if
// it did apply before (an acknowledgement lost on the way back). The same
// in SQL, for one subscriber:
//
//	INSERT INTO shoal_outbox_deliveries (event_id, service, attempts, next_at, lease_until, delivered_at, last_error, pending_since)
//	SELECT event_id, service, 0, <now ms>, 0, NULL, last_error, <now ms> FROM shoal_outbox_dead_letters WHERE service = '<service>';
//	DELETE FROM shoal_outbox_dead_letters WHERE service = '<service>';
func (o *Outbox) Redeliver(ctx context.Context, f DeadLetterFilter) (int64, error) {
	var n int64
	err := o.db.Tx(ctx, func(tx *sql.Tx) error {
		cond, args := f.where(millis(time.Now()))
		res, err := tx.ExecContext(ctx, `INSERT INTO `+deliveriesTable+`
			(event_id, service, attempts, next_at, lease_until, delivered_at, last_error, pending_since)
			SELECT dl.event_id, dl.service, 0, CAST($1 AS BIGINT), 0, NULL, dl.last_error, CAST($1 AS BIGINT)
			FROM `+deadLettersTable+` dl JOIN `+eventsTable+` e ON e.id = dl.event_id WHERE `+cond, args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		cond, args = f.where()
		_, err = tx.ExecContext(ctx, `DELETE FROM `+deadLettersTable+` WHERE (event_id, service) IN
			(SELECT dl.event_id, dl.service FROM `+deadLettersTable+` dl JOIN `+eventsTable+` e ON e.id = dl.event_id WHERE `+cond+`)`,
			args...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("events: redeliver: %w", err)
	}
	if n > 0 {
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
	return n, nil
}

// exhausted reports whether d, failed once more at now, has reached its
// bound.
func (o *Outbox) exhausted(d delivery, now time.Time) bool {
	return o.cfg.MaxAttempts > 0 && d.attempts+1 >= o.cfg.MaxAttempts ||
		millis(now)-d.since >= o.cfg.MaxAge.Milliseconds()
}

// bury moves res's delivery to the dead letters in tx if it is still ours
// (see record), and reports whether it did.
func (o *Outbox) bury(ctx context.Context, tx *sql.Tx, res outcome, now time.Time) (bool, error) {
	d := res.d
	r, err := tx.ExecContext(ctx, `INSERT INTO `+deadLettersTable+` (event_id, service, attempts, last_error, dead_at)
		SELECT event_id, service, attempts + 1, CAST($1 AS TEXT), CAST($2 AS BIGINT) FROM `+deliveriesTable+`
		WHERE event_id = $3 AND service = $4 AND delivered_at IS NULL AND lease_until = $5
		ON CONFLICT (event_id, service) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error, dead_at = excluded.dead_at`,
		truncate(res.err.Error(), 500), millis(now), d.ev.ID, d.service, d.lease)
	if err != nil {
		return false, err
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM `+deliveriesTable+` WHERE event_id = $1 AND service = $2`, d.ev.ID, d.service)
	return err == nil, err
}

// countDeadLetters counts the dead letters in the database.
func (o *Outbox) countDeadLetters(ctx context.Context) (int64, error) {
	var n int64
	err := o.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+deadLettersTable).Scan(&n)
	return n, err
}
