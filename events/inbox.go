package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/store"
)

// InboxRetention is how long an Inbox remembers the IDs of events it
// received, and so deduplicates them. Redeliveries come within a lease and
// a few backoffs of the first delivery, unless every producer instance is
// down for longer than this in between.
const InboxRetention = 7 * 24 * time.Hour

// Handler applies an event. It runs in tx, the transaction that records
// the event as received: if it writes through tx, its effects apply
// exactly once per event ID. It returns an error to have the event
// delivered again later (everything it wrote through tx is rolled back).
// It may run more than once for an event if the transaction is retried
// (store.DB.Tx): effects outside tx are at-least-once. It must not use the
// store.DB itself (nor start another Tx): on SQLite that waits for the
// write lock its own transaction holds.
type Handler func(ctx context.Context, tx *sql.Tx, ev Event) error

// Inbox is the subscriber side: an http.Handler for Path that applies each
// event once, however often it is delivered. Register handlers with Handle
// before serving; ServeHTTP is safe for concurrent use, across instances
// sharing the database too.
type Inbox struct {
	db        *store.DB
	mu        sync.RWMutex
	handlers  map[string]Handler
	lastPurge atomic.Int64 // Unix ms of the last purge of old IDs
	retention time.Duration
}

// NewInbox returns an Inbox over db (which the caller still owns and
// closes). It does no I/O: call Migrate before serving.
func NewInbox(db *store.DB) *Inbox {
	return &Inbox{db: db, handlers: make(map[string]Handler), retention: InboxRetention}
}

// Migrate creates or updates the inbox's table (migration list
// "events.inbox"). Instances starting at once may all call it.
func (in *Inbox) Migrate(ctx context.Context) error {
	return in.db.Migrate(ctx, inboxMigrations, inboxSchema)
}

// Handle registers h for topic. Events of a topic with no handler are
// answered 404, which producers retry: a subscriber deployed before it
// handles a topic gets its events once it does. Handle panics if topic is
// invalid or already has a handler.
func (in *Inbox) Handle(topic string, h Handler) {
	if !validTopic(topic) || h == nil {
		panic(fmt.Sprintf("events: Handle(%q): invalid topic or nil handler", topic))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, dup := in.handlers[topic]; dup {
		panic(fmt.Sprintf("events: Handle(%q): topic already handled", topic))
	}
	in.handlers[topic] = h
}

// ServeHTTP receives a delivery: POST with the event's ID and topic in
// headers (HeaderID, HeaderTopic, optionally HeaderTime) and its JSON
// payload as the body. In one transaction it records the ID and, if the ID
// is new, runs the topic's handler; then it answers 204. A duplicate is
// answered 204 without running the handler. A handler error rolls back
// and answers 500, so the producer delivers again later. Missing or
// invalid headers or body answer 400, a topic with no handler 404, other
// methods 405, a delivery that came on a user token without a publisher's
// certificate 403 (see "Who may deliver" in the package doc). Errors are
// JSON: {"error": {"code": …, "message": …}}.
func (in *Inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "events are POSTed")
		return
	}
	if _, service := identity.CallerFrom(r.Context()); !service {
		if _, user := identity.UserFrom(r.Context()); user {
			// Past a Guard with a user token alone (a route of the gateway
			// that reaches /_events): a user is not a publisher.
			writeError(w, http.StatusForbidden, "forbidden", "events are delivered by services, with their certificates, not on a user's behalf")
			return
		}
	}
	ev := Event{ID: r.Header.Get(HeaderID), Topic: r.Header.Get(HeaderTopic)}
	if !validID(ev.ID) || !validTopic(ev.Topic) {
		writeError(w, http.StatusBadRequest, "invalid_event", "missing or invalid "+HeaderID+" or "+HeaderTopic)
		return
	}
	if t := r.Header.Get(HeaderTime); t != "" {
		created, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_event", "invalid "+HeaderTime)
			return
		}
		ev.CreatedAt = created.UTC()
	}
	in.mu.RLock()
	h := in.handlers[ev.Topic]
	in.mu.RUnlock()
	if h == nil {
		writeError(w, http.StatusNotFound, "unknown_topic", "no handler for topic "+ev.Topic)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayload))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("payload exceeds %d bytes", MaxPayload))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_event", "reading the payload: "+err.Error())
		return
	case !json.Valid(body):
		writeError(w, http.StatusBadRequest, "invalid_event", "payload is not JSON")
		return
	}
	ev.Payload = body
	ctx := r.Context()
	now := time.Now()
	err = in.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO `+inboxTable+` (id, topic, received_at) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO NOTHING`, ev.ID, ev.Topic, millis(now))
		if err != nil {
			return fmt.Errorf("recording the event: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // a duplicate: done already
		}
		return h(ctx, tx, ev)
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "handler_failed", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
	// The producer has its answer before a purge runs.
	_ = http.NewResponseController(w).Flush()
	in.maybePurge(context.WithoutCancel(ctx), now)
}

// purgeSweep bounds the time one delivery spends purging, after its
// answer was sent; a sweep cut short leaves the rest to the next delivery.
const purgeSweep = 2 * time.Second

// maybePurge deletes the IDs older than the retention, once a minute at
// most per Inbox (a rare request pays for it, after its answer, rather
// than the Inbox owning a goroutine). It deletes in batches, each in a
// transaction of its own so that writers get the lock in between, until
// none is left: it keeps up with any rate of events, where a batch per
// minute fell behind above purgeBatch a minute (~8 events/s). A sweep
// that runs out of purgeSweep lets the next delivery go on at once; one
// that fails waits for the next minute. Purges commit with TxNoSync: one
// lost in a power cut is done again.
func (in *Inbox) maybePurge(ctx context.Context, now time.Time) {
	last := in.lastPurge.Load()
	if millis(now)-last < purgeEvery.Milliseconds() || !in.lastPurge.CompareAndSwap(last, millis(now)) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, purgeSweep)
	defer cancel()
	cutoff := millis(now.Add(-in.retention))
	for {
		var n int64
		err := in.db.TxNoSync(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+inboxTable+` WHERE id IN
				(SELECT id FROM `+inboxTable+` WHERE received_at < $1 LIMIT $2)`, cutoff, purgeBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				in.lastPurge.Store(0) // not caught up: the next delivery goes on
			}
			return
		}
		if n < purgeBatch {
			return
		}
	}
}

// InboxStats counts the events an Inbox's database remembers receiving
// (for InboxRetention), all instances' together.
type InboxStats struct {
	Received int64            `json:"received"`
	ByTopic  map[string]int64 `json:"by_topic"`
}

// Stats counts received events by topic. It scans the table: for tests and
// admin endpoints.
func (in *Inbox) Stats(ctx context.Context) (InboxStats, error) {
	st := InboxStats{ByTopic: make(map[string]int64)}
	rows, err := in.db.QueryContext(ctx, `SELECT topic, COUNT(*) FROM `+inboxTable+` GROUP BY topic`)
	if err != nil {
		return InboxStats{}, fmt.Errorf("events: inbox stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var topic string
		var n int64
		if err := rows.Scan(&topic, &n); err != nil {
			return InboxStats{}, fmt.Errorf("events: inbox stats: %w", err)
		}
		st.ByTopic[topic] = n
		st.Received += n
	}
	if err := rows.Err(); err != nil {
		return InboxStats{}, fmt.Errorf("events: inbox stats: %w", err)
	}
	return st, nil
}

// writeError answers with the wire convention's JSON error.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
