package events

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/store"
)

// Tuning of Run that OutboxConfig does not expose.
const (
	// purgeEvery is how often Run deletes rows older than Retention.
	purgeEvery = time.Minute
	// purgeBatch bounds the rows one purge statement deletes, so that a
	// backlog never holds SQLite's write lock for long.
	purgeBatch = 500
	// followFirst is the first of the quick looks Run takes after a
	// Publish woke it and found nothing: the publisher's transaction had
	// not committed yet. They double up to Poll.
	followFirst = 5 * time.Millisecond
	// stopGrace bounds the writes Run makes once its ctx ended: marking
	// what was delivered, releasing what was not.
	stopGrace = 2 * time.Second
)

// delivery is a claimed row: an event to send to a service.
type delivery struct {
	ev       Event
	service  string
	attempts int   // before this one
	lease    int64 // lease_until as claimed (ms): who holds the row
	since    int64 // pending_since (ms): when MaxAge started counting
}

// outcome is a delivery attempt's result: err nil if delivered.
type outcome struct {
	d   delivery
	err error
}

// Run delivers due deliveries until ctx ends, then returns nil (or at once
// an error if the config is invalid). It claims up to Batch due rows at a
// time under a lease (an UPDATE … WHERE lease_until has passed: of several
// Runs sharing the database, one gets each row), POSTs each to
// http://<service>/_events with up to Concurrency in flight, and records
// the outcomes in batches: a 2xx answer marks the delivery done; anything
// else is an attempt more, tried again after a backoff, or moved to the
// dead letters once MaxAttempts or MaxAge is reached. A panic while
// delivering (in the Client's transport, say) is recovered, logged with
// its stack and counted as a failed attempt. Run deletes rows older than
// Retention, and dead letters older than DeadLetterRetention, now and
// then. Database errors are logged and retried after Poll.
//
// That bookkeeping commits with store.DB.TxNoSync, without waiting for the
// disk: after a power cut, a lost claim is a lease that ended, a lost
// outcome a delivery made again (the inbox deduplicates it), a lost
// dead-letter move a delivery still pending. Only Publish, in the
// caller's transaction, must be durable.
//
// When ctx ends, Run stops claiming, cancels the requests in flight, marks
// what was delivered and releases the rest, so that another instance
// delivers them at once rather than after the lease. A process that dies
// instead leaves its claims leased until Lease passes.
func (o *Outbox) Run(ctx context.Context) error {
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	r := &runner{o: o, log: o.cfg.Logger, jobs: make(chan delivery), results: make(chan outcome)}
	var workers sync.WaitGroup
	for range o.cfg.Concurrency {
		workers.Go(func() { // ends when Run closes jobs
			for d := range r.jobs {
				r.results <- o.attempt(ctx, d)
			}
		})
	}
	r.loop(ctx)
	close(r.jobs)
	workers.Wait()
	return nil
}

// runner is Run's state, owned by Run's goroutine.
type runner struct {
	o       *Outbox
	log     *slog.Logger
	jobs    chan delivery // to the workers; unbuffered
	results chan outcome  // from the workers; unbuffered
	queue   []delivery    // claimed, not handed to a worker yet
	busy    int           // handed to workers, outcome not received yet
	done    []outcome     // received, not recorded yet
	// uncounted: dead letters were added since the last count reported
	// (a count cut short by Run's end is made again at stop).
	uncounted bool
}

func (r *runner) loop(ctx context.Context) {
	cfg := r.o.cfg
	timer := time.NewTimer(0) // look at once
	defer timer.Stop()
	want := false // look for due deliveries when there is room
	follow := time.Duration(0)
	nextPurge := time.Now()
	for {
		var send chan delivery
		var next delivery
		if len(r.queue) > 0 {
			send, next = r.jobs, r.queue[0]
		}
		select {
		case send <- next:
			r.queue = r.queue[1:]
			r.busy++
		case res := <-r.results:
			r.receive(res)
			// Record what is ready, in one transaction.
			for drained := false; !drained; {
				select {
				case res := <-r.results:
					r.receive(res)
				default:
					drained = true
				}
			}
			r.record(ctx)
		case <-r.o.wake:
			want = true
			follow = followFirst
		case <-timer.C:
			want = true
			if len(r.done) > 0 { // a failed record: try again
				r.record(ctx)
			}
		case <-ctx.Done():
			r.stop(ctx)
			return
		}
		// Drop claims that could not finish within their lease now: they
		// will be due again when it ends, for anyone.
		for len(r.queue) > 0 && time.Now().Add(cfg.Timeout).UnixMilli() > r.queue[0].lease {
			r.queue = r.queue[1:]
			want = true
		}
		if now := time.Now(); now.After(nextPurge) {
			nextPurge = now.Add(purgeEvery)
			if err := r.o.purge(ctx, now); err != nil && ctx.Err() == nil {
				r.log.Warn("events: purging delivered events", "err", err)
			}
			r.countDeadLetters(ctx)
		}
		room := cfg.Batch - r.busy
		if !want || len(r.queue) > 0 || r.busy >= cfg.Concurrency || room <= 0 {
			continue
		}
		want = false
		n, err := r.claim(ctx, room)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.log.Warn("events: claiming deliveries", "err", err)
			}
			timer.Reset(cfg.Poll)
		case n == room:
			want = true // more may be due: claim again when there is room
			follow = 0
			timer.Reset(cfg.Poll)
		case n == 0 && follow > 0:
			timer.Reset(follow)
			if follow *= 2; follow >= cfg.Poll {
				follow = 0
			}
		default:
			follow = 0
			timer.Reset(cfg.Poll)
		}
	}
}

// receive takes a worker's outcome.
func (r *runner) receive(res outcome) {
	r.busy--
	r.done = append(r.done, res)
}

// record writes the outcomes received; on failure they stay, to be tried
// again (with a bound: forgetting an outcome only means a delivery again).
func (r *runner) record(ctx context.Context) {
	dead, err := r.o.record(ctx, r.done)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("events: recording delivery outcomes", "err", err, "outcomes", len(r.done))
		}
		if over := len(r.done) - 4*r.o.cfg.Batch; over > 0 {
			r.done = r.done[over:]
		}
		return
	}
	r.done = r.done[:0]
	if len(dead) > 0 {
		r.buried(dead)
		r.countDeadLetters(ctx)
	}
}

// buried reports the deliveries record moved to the dead letters.
func (r *runner) buried(dead []outcome) {
	if len(dead) > 0 {
		r.uncounted = true
	}
	for _, res := range dead {
		d := res.d
		r.log.Error("events: delivery given up, moved to the dead letters (Outbox.DeadLetters, Outbox.Redeliver)",
			"topic", d.ev.Topic, "event", d.ev.ID, "subscriber", d.service, "attempts", d.attempts+1,
			"pending_for", time.Since(time.UnixMilli(d.since)).Round(time.Second).String(), "err", res.err)
		r.o.cfg.Metrics.DeadLettered(d.ev.Topic, d.service)
	}
}

// countDeadLetters reports how many dead letters the database holds.
func (r *runner) countDeadLetters(ctx context.Context) {
	n, err := r.o.countDeadLetters(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("events: counting dead letters", "err", err)
		}
		return
	}
	r.o.cfg.Metrics.DeadLetters(n)
	r.uncounted = false
}

// stop ends Run's work once ctx is done: the workers' requests end with
// ctx; the outcomes are recorded, the dead letters counted if the last
// ones added were not (ctx may have cut that count short), and the
// attempts cut short and the claims not started released.
func (r *runner) stop(ctx context.Context) {
	for r.busy > 0 {
		r.receive(<-r.results)
	}
	var release []delivery
	outcomes := r.done[:0]
	for _, res := range r.done {
		if res.err != nil && errors.Is(res.err, context.Canceled) {
			release = append(release, res.d)
		} else {
			outcomes = append(outcomes, res)
		}
	}
	release = append(release, r.queue...)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	defer cancel()
	dead, err := r.o.record(wctx, outcomes)
	if err != nil {
		r.log.Warn("events: recording deliveries at stop", "err", err)
	}
	r.buried(dead)
	if r.uncounted {
		r.countDeadLetters(wctx)
	}
	if err := r.o.release(wctx, release); err != nil {
		r.log.Warn("events: releasing claims at stop", "err", err)
	}
}

// claim leases up to n due deliveries and queues them; it returns how
// many.
func (r *runner) claim(ctx context.Context, n int) (int, error) {
	ds, err := r.o.claim(ctx, n)
	r.queue = append(r.queue, ds...)
	return len(ds), err
}

// claim leases up to n due deliveries to the caller, until now+Lease.
func (o *Outbox) claim(ctx context.Context, n int) ([]delivery, error) {
	now := time.Now()
	if o.db.Dialect == store.SQLite {
		// Look first, outside a transaction: WAL readers take no lock,
		// and an idle poll then costs no turn at the write lock.
		var one int
		err := o.db.QueryRowContext(ctx, `SELECT 1 FROM `+deliveriesTable+`
			WHERE delivered_at IS NULL AND next_at <= $1 AND lease_until <= $1 LIMIT 1`, millis(now)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	query := `SELECT d.event_id, d.service, d.attempts, d.pending_since, e.topic, e.payload, e.created_at
		FROM ` + deliveriesTable + ` d JOIN ` + eventsTable + ` e ON e.id = d.event_id
		WHERE d.delivered_at IS NULL AND d.next_at <= $1 AND d.lease_until <= $1
		ORDER BY d.next_at LIMIT $2`
	if o.db.Dialect == store.Postgres {
		// Rows another claimant is taking are skipped, not waited for.
		query += ` FOR UPDATE OF d SKIP LOCKED`
	}
	var claimed []delivery
	err := o.db.TxNoSync(ctx, func(tx *sql.Tx) error {
		claimed = claimed[:0]
		now = time.Now()
		lease := millis(now.Add(o.cfg.Lease))
		rows, err := tx.QueryContext(ctx, query, millis(now), n)
		if err != nil {
			return err
		}
		var found []delivery
		for rows.Next() {
			var d delivery
			var payload string
			var created int64
			if err := rows.Scan(&d.ev.ID, &d.service, &d.attempts, &d.since, &d.ev.Topic, &payload, &created); err != nil {
				rows.Close()
				return err
			}
			d.ev.Payload = []byte(payload)
			d.ev.CreatedAt = time.UnixMilli(created).UTC()
			d.lease = lease
			found = append(found, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, d := range found {
			// Checked again in the UPDATE: on PostgreSQL under READ
			// COMMITTED, the row as it is now decides.
			res, err := tx.ExecContext(ctx, `UPDATE `+deliveriesTable+` SET lease_until = $1
				WHERE event_id = $2 AND service = $3 AND delivered_at IS NULL AND lease_until <= $4`,
				lease, d.ev.ID, d.service, millis(now))
			if err != nil {
				return err
			}
			if k, err := res.RowsAffected(); err != nil {
				return err
			} else if k == 1 {
				claimed = append(claimed, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// record marks the delivered as such, and the failed as an attempt more,
// due again after a backoff (or moved to the dead letters, once their
// bound is reached), if the failed are still ours (not claimed by another
// Run after our lease ended). It returns the outcomes it moved to the dead
// letters.
func (o *Outbox) record(ctx context.Context, outcomes []outcome) (dead []outcome, err error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	err = o.db.TxNoSync(ctx, func(tx *sql.Tx) error {
		dead = dead[:0]
		now := time.Now()
		for _, res := range outcomes {
			d := res.d
			var err error
			if res.err != nil && o.exhausted(d, now) {
				buried, err := o.bury(ctx, tx, res, now)
				if err != nil {
					return err
				}
				if buried {
					dead = append(dead, res)
				}
				continue
			}
			if res.err == nil {
				// Delivered is a fact, whoever holds the row now.
				_, err = tx.ExecContext(ctx, `UPDATE `+deliveriesTable+`
					SET delivered_at = $1, lease_until = 0, attempts = attempts + 1, last_error = ''
					WHERE event_id = $2 AND service = $3 AND delivered_at IS NULL`,
					millis(now), d.ev.ID, d.service)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE `+deliveriesTable+`
					SET attempts = attempts + 1, next_at = $1, lease_until = 0, last_error = $2
					WHERE event_id = $3 AND service = $4 AND delivered_at IS NULL AND lease_until = $5`,
					millis(now.Add(o.backoff(d.attempts+1))), truncate(res.err.Error(), 500), d.ev.ID, d.service, d.lease)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dead, nil
}

// release gives claims up: due again at once, for anyone.
func (o *Outbox) release(ctx context.Context, ds []delivery) error {
	if len(ds) == 0 {
		return nil
	}
	return o.db.TxNoSync(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `UPDATE `+deliveriesTable+` SET lease_until = 0
				WHERE event_id = $1 AND service = $2 AND delivered_at IS NULL AND lease_until = $3`,
				d.ev.ID, d.service, d.lease); err != nil {
				return err
			}
		}
		return nil
	})
}

// backoff is the wait after a delivery's attempts-th failure: MinBackoff
// doubled per attempt, up to MaxBackoff, jittered to between half and all
// of that so that a subscriber coming back is not hit by all at once.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.MinBackoff
	for i := 1; i < attempts && d < o.cfg.MaxBackoff; i++ {
		d *= 2 // no overflow: stops at MaxBackoff
	}
	d = min(d, o.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// attempt delivers d (see deliver), counting the outcome, and recovers a
// panic into a failed outcome, so that a bug on the way (a transport, a
// hook) costs the attempt, not the process, and the delivery is retried or
// dead-lettered like any other failure.
func (o *Outbox) attempt(runCtx context.Context, d delivery) (res outcome) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		o.cfg.Logger.Error("events: delivery panicked (recovered; counted as a failed attempt)",
			"topic", d.ev.Topic, "event", d.ev.ID, "subscriber", d.service, "attempt", d.attempts+1,
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		o.cfg.Metrics.Delivery(d.ev.Topic, d.service, OutcomePanicked)
		res = outcome{d, fmt.Errorf("events: delivery panicked: %v", p)}
	}()
	res = o.deliver(runCtx, d)
	switch {
	case res.err == nil:
		o.cfg.Metrics.Delivery(d.ev.Topic, d.service, OutcomeDelivered)
	case runCtx.Err() == nil: // not cut short by Run's end
		o.cfg.Metrics.Delivery(d.ev.Topic, d.service, OutcomeFailed)
	}
	return res
}

// deliver POSTs d to its service and says how it went; runCtx is Run's.
func (o *Outbox) deliver(runCtx context.Context, d delivery) outcome {
	ctx, cancel := context.WithTimeout(runCtx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.service+Path, bytes.NewReader(d.ev.Payload))
	if err != nil {
		return outcome{d, err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderID, d.ev.ID)
	req.Header.Set(HeaderTopic, d.ev.Topic)
	req.Header.Set(HeaderTime, d.ev.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	// The inbox deduplicates on the event ID: retrying and failing the
	// POST over to another instance is safe, and Shoal's client does so
	// for requests with a key.
	req.Header.Set("Idempotency-Key", d.ev.ID)
	resp, err := o.cfg.Client.Do(req)
	if err != nil {
		if runCtx.Err() == nil {
			o.failed(d, err)
		}
		return outcome{d, err}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	if resp.StatusCode/100 == 2 {
		return outcome{d, nil}
	}
	err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	o.failed(d, err)
	return outcome{d, err}
}

// failed logs a failed attempt: at warning level when the attempts reach
// a power of two from 4 on (a subscriber down for long is not a log line
// per retry), else at debug level.
func (o *Outbox) failed(d delivery, err error) {
	n := d.attempts + 1
	args := []any{"topic", d.ev.Topic, "event", d.ev.ID, "subscriber", d.service, "attempt", n, "err", err}
	if n >= 4 && n&(n-1) == 0 {
		o.cfg.Logger.Warn("events: delivery failed", args...)
		return
	}
	o.cfg.Logger.Debug("events: delivery failed", args...)
}

// purge deletes deliveries delivered before now-Retention, dead letters
// older than DeadLetterRetention, then events older than Retention with
// neither left, in batches.
func (o *Outbox) purge(ctx context.Context, now time.Time) error {
	for _, p := range []struct {
		stmt   string
		cutoff time.Duration
	}{
		{`DELETE FROM ` + deliveriesTable + ` WHERE (event_id, service) IN (SELECT event_id, service FROM ` + deliveriesTable + `
			WHERE delivered_at IS NOT NULL AND delivered_at < $1 LIMIT $2)`, o.cfg.Retention},
		{`DELETE FROM ` + deadLettersTable + ` WHERE (event_id, service) IN (SELECT event_id, service FROM ` + deadLettersTable + `
			WHERE dead_at < $1 LIMIT $2)`, o.cfg.DeadLetterRetention},
		{`DELETE FROM ` + eventsTable + ` WHERE id IN (SELECT id FROM ` + eventsTable + ` e WHERE e.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM ` + deliveriesTable + ` d WHERE d.event_id = e.id)
			AND NOT EXISTS (SELECT 1 FROM ` + deadLettersTable + ` dl WHERE dl.event_id = e.id) LIMIT $2)`, o.cfg.Retention},
	} {
		stmt, cutoff := p.stmt, millis(now.Add(-p.cutoff))
		for {
			var n int64
			err := o.db.TxNoSync(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, stmt, cutoff, purgeBatch)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return err
			}
			if n < purgeBatch {
				break
			}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
