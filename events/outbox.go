package events

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/store"
)

// ErrUnknownTopic is returned by Publish for a topic with no subscribers
// in OutboxConfig.Subscribers: most likely a typo, and an event nobody
// would ever receive.
var ErrUnknownTopic = errors.New("events: topic has no subscribers")

// OutboxConfig configures an Outbox. Only Subscribers and Client are
// required; zero durations and counts take the defaults below.
type OutboxConfig struct {
	// Subscribers maps each topic to the services that receive it, e.g.
	// {"progress": {"history", "recommendations"}}. Publish records one
	// delivery per subscriber.
	Subscribers map[string][]string
	// Client sends deliveries to http://<service>/_events: it must
	// resolve service names (the SDK's svc.Client()). Required by Run.
	Client *http.Client
	// Batch is how many due deliveries Run claims at a time; default 64.
	Batch int
	// Concurrency is how many deliveries Run has in flight; default 16.
	Concurrency int
	// Poll is how often an idle Run looks for due deliveries; default
	// 250ms. Publish also wakes the Run of its own Outbox.
	Poll time.Duration
	// Lease is how long a claimed delivery stays its claimant's: if that
	// Run dies, another delivers it after this; default 10s. It must
	// exceed Timeout.
	Lease time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed delivery
	// is tried again: exponential in its attempts, jittered; default
	// 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one delivery attempt; default 5s.
	Timeout time.Duration
	// Retention is how long delivered deliveries, and events all of
	// whose deliveries are done, are kept (for Stats and debugging)
	// before Run deletes them; default 24h.
	Retention time.Duration
	// MaxAttempts and MaxAge bound the retries of a delivery: once it
	// has failed MaxAttempts times, or a failure comes MaxAge after it
	// became pending (its event was published, or redelivered), it moves
	// to the dead letters (see DeadLetters and Redeliver). MaxAttempts 0
	// (the default) sets no bound on the count, since a subscriber down
	// for a while is normal and its events should wait for it;
	// MaxAge's default is 24h.
	MaxAttempts int
	MaxAge      time.Duration
	// DeadLetterRetention is how long dead letters are kept, to inspect
	// and redeliver, before Run deletes them (and then their events);
	// default 7 days.
	DeadLetterRetention time.Duration
	// Logger gets failed deliveries, dead letters, recovered panics and
	// database errors; default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, is told of delivery outcomes and dead letters as
	// they happen (telemetry.EventMetrics exports them to Prometheus).
	Metrics OutboxMetrics
}

// OutboxMetrics receives an Outbox's counts. telemetry.EventMetrics is
// one. Its methods are called from Run's goroutines (its loop and its
// workers, at once): they must be safe for concurrent use and must not
// block.
type OutboxMetrics interface {
	// Delivery counts one attempt to deliver an event of topic to
	// service, by outcome: OutcomeDelivered, OutcomeFailed or
	// OutcomePanicked.
	Delivery(topic, service, outcome string)
	// DeadLettered counts a delivery given up on: moved to the dead
	// letters.
	DeadLettered(topic, service string)
	// DeadLetters reports how many dead letters the database holds (all
	// producer instances'), as Run counted them last: at its start,
	// every minute and after it added some.
	DeadLetters(n int64)
}

// Outcomes of a delivery attempt, as OutboxMetrics.Delivery gets them.
const (
	OutcomeDelivered = "delivered" // the subscriber answered 2xx
	OutcomeFailed    = "failed"    // any other answer, or no answer
	OutcomePanicked  = "panicked"  // the attempt panicked (recovered; it counts as failed)
)

// Defaults of OutboxConfig.
const (
	DefaultBatch       = 64
	DefaultConcurrency = 16
	DefaultPoll        = 250 * time.Millisecond
	DefaultLease       = 10 * time.Second
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultRetention   = 24 * time.Hour
	DefaultMaxAge      = 24 * time.Hour
	// DefaultDeadLetterRetention is as long as an Inbox remembers IDs:
	// a dead letter redelivered within it is still deduplicated.
	DefaultDeadLetterRetention = InboxRetention
)

// Validate reports what is wrong with c, defaults applied: no Client, a bad
// topic or service name, a negative setting, or a Lease not longer than
// Timeout.
func (c OutboxConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("a Client is required (it must resolve http://<service>/)"))
	}
	for topic, services := range c.Subscribers {
		if !validTopic(topic) {
			errs = append(errs, fmt.Errorf("topic %q: want letters, digits and -_.: only", topic))
		}
		for _, s := range services {
			if !validService(s) {
				errs = append(errs, fmt.Errorf("topic %q: subscriber %q is not a service name", topic, s))
			}
		}
	}
	if c.Batch < 0 || c.Concurrency < 0 || c.Poll < 0 || c.Lease < 0 || c.MinBackoff < 0 ||
		c.MaxBackoff < 0 || c.Timeout < 0 || c.Retention < 0 || c.MaxAttempts < 0 || c.MaxAge < 0 ||
		c.DeadLetterRetention < 0 {
		errs = append(errs, errors.New("counts and durations must not be negative"))
	}
	d := c.withDefaults()
	if d.Lease <= d.Timeout {
		errs = append(errs, fmt.Errorf("the Lease (%v) must exceed the Timeout (%v)", d.Lease, d.Timeout))
	}
	if d.MaxBackoff < d.MinBackoff {
		errs = append(errs, fmt.Errorf("MaxBackoff (%v) is below MinBackoff (%v)", d.MaxBackoff, d.MinBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("events: outbox config: %w", err)
	}
	return nil
}

func (c OutboxConfig) withDefaults() OutboxConfig {
	c.Batch = cmp.Or(c.Batch, DefaultBatch)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.Poll = cmp.Or(c.Poll, DefaultPoll)
	c.Lease = cmp.Or(c.Lease, DefaultLease)
	c.MinBackoff = cmp.Or(c.MinBackoff, DefaultMinBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.Retention = cmp.Or(c.Retention, DefaultRetention)
	c.MaxAge = cmp.Or(c.MaxAge, DefaultMaxAge)
	c.DeadLetterRetention = cmp.Or(c.DeadLetterRetention, DefaultDeadLetterRetention)
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// noMetrics is OutboxConfig.Metrics when none is set.
type noMetrics struct{}

func (noMetrics) Delivery(topic, service, outcome string) {}
func (noMetrics) DeadLettered(topic, service string)      {}
func (noMetrics) DeadLetters(n int64)                     {}

// Outbox is the producer side: Publish records events in the caller's
// transaction, and Run delivers them to the subscribers. Several instances
// of a service (processes sharing the database) may each run an Outbox:
// they share the work, and no delivery is in flight from two of them at
// once while its lease holds. Its methods are safe for concurrent use.
type Outbox struct {
	db   *store.DB
	cfg  OutboxConfig
	subs map[string][]string
	// wake tells Run that Publish added deliveries; size 1, sent to
	// without blocking.
	wake chan struct{}
}

// NewOutbox returns an Outbox over db (which the caller still owns and
// closes). It does no I/O: call Migrate before Publish and Run.
func NewOutbox(db *store.DB, cfg OutboxConfig) *Outbox {
	cfg = cfg.withDefaults()
	subs := make(map[string][]string, len(cfg.Subscribers))
	for topic, services := range cfg.Subscribers {
		s := slices.Clone(services)
		slices.Sort(s)
		subs[topic] = slices.Compact(s)
	}
	cfg.Subscribers = subs
	return &Outbox{db: db, cfg: cfg, subs: subs, wake: make(chan struct{}, 1)}
}

// Migrate creates or updates the outbox's tables (migration list
// "events.outbox"). Instances starting at once may all call it.
func (o *Outbox) Migrate(ctx context.Context) error {
	return o.db.Migrate(ctx, outboxMigrations, outboxSchema)
}

// Publish records an event of topic with payload (marshaled to JSON) and
// one delivery per subscriber of topic, in tx, the caller's transaction:
// the event exists if and only if tx commits, together with the caller's
// own writes. It wakes this Outbox's Run; a Run of another process finds
// the event within its Poll. Publish fails with ErrUnknownTopic for a
// topic with no subscribers, and for payloads that do not marshal or
// exceed MaxPayload.
func (o *Outbox) Publish(ctx context.Context, tx *sql.Tx, topic string, payload any) (Event, error) {
	services := o.subs[topic]
	if len(services) == 0 {
		return Event{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("events: publish %s: %w", topic, err)
	}
	if len(data) > MaxPayload {
		return Event{}, fmt.Errorf("events: publish %s: payload of %d bytes exceeds %d", topic, len(data), MaxPayload)
	}
	now := time.Now()
	ev := Event{ID: newID(now), Topic: topic, Payload: data, CreatedAt: time.UnixMilli(millis(now)).UTC()}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+eventsTable+` (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)`,
		ev.ID, topic, string(data), millis(now)); err != nil {
		return Event{}, fmt.Errorf("events: publish %s: %w", topic, err)
	}
	// One statement for all subscribers: ($1 id, $2 now, then a
	// parameter per service, in order of first appearance).
	var q strings.Builder
	q.WriteString(`INSERT INTO ` + deliveriesTable +
		` (event_id, service, attempts, next_at, lease_until, delivered_at, last_error, pending_since) VALUES `)
	args := []any{ev.ID, millis(now)}
	for i, s := range services {
		if i > 0 {
			q.WriteString(", ")
		}
		args = append(args, s)
		q.WriteString(`($1, $` + strconv.Itoa(len(args)) + `, 0, $2, 0, NULL, '', $2)`)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return Event{}, fmt.Errorf("events: publish %s: %w", topic, err)
	}
	select {
	case o.wake <- struct{}{}:
	default: // Run is awake already
	}
	return ev, nil
}

// OutboxStats counts an Outbox's table rows: those not purged yet.
type OutboxStats struct {
	Events int64 `json:"events"`
	// Pending deliveries are not delivered yet: due, in flight, or
	// waiting to be tried again. Retrying counts those of them tried
	// before.
	Pending   int64 `json:"pending"`
	Retrying  int64 `json:"retrying"`
	Delivered int64 `json:"delivered"`
	// DeadLetters are deliveries given up on (see DeadLetters).
	DeadLetters int64 `json:"dead_letters"`
	// Routes breaks the deliveries down by topic and subscriber, sorted.
	Routes []RouteStats `json:"routes"`
}

// RouteStats counts the deliveries of one topic to one subscriber.
type RouteStats struct {
	Topic       string `json:"topic"`
	Service     string `json:"service"`
	Pending     int64  `json:"pending"`
	Retrying    int64  `json:"retrying"`
	Delivered   int64  `json:"delivered"`
	DeadLetters int64  `json:"dead_letters"`
}

// Stats counts events and deliveries in the database, all producers'
// together. It scans the tables: for tests and admin endpoints, not for
// every request.
func (o *Outbox) Stats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	if err := o.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+eventsTable).Scan(&st.Events); err != nil {
		return OutboxStats{}, fmt.Errorf("events: stats: %w", err)
	}
	rows, err := o.db.QueryContext(ctx, `SELECT topic, service, SUM(pending), SUM(retrying), SUM(delivered), SUM(dead)
		FROM (SELECT e.topic, d.service,
			CASE WHEN d.delivered_at IS NULL THEN 1 ELSE 0 END AS pending,
			CASE WHEN d.delivered_at IS NULL AND d.attempts > 0 THEN 1 ELSE 0 END AS retrying,
			CASE WHEN d.delivered_at IS NULL THEN 0 ELSE 1 END AS delivered,
			0 AS dead
			FROM `+deliveriesTable+` d JOIN `+eventsTable+` e ON e.id = d.event_id
		UNION ALL
		SELECT e.topic, dl.service, 0, 0, 0, 1
			FROM `+deadLettersTable+` dl JOIN `+eventsTable+` e ON e.id = dl.event_id) routes
		GROUP BY topic, service ORDER BY topic, service`)
	if err != nil {
		return OutboxStats{}, fmt.Errorf("events: stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r RouteStats
		if err := rows.Scan(&r.Topic, &r.Service, &r.Pending, &r.Retrying, &r.Delivered, &r.DeadLetters); err != nil {
			return OutboxStats{}, fmt.Errorf("events: stats: %w", err)
		}
		st.Pending += r.Pending
		st.Retrying += r.Retrying
		st.Delivered += r.Delivered
		st.DeadLetters += r.DeadLetters
		st.Routes = append(st.Routes, r)
	}
	if err := rows.Err(); err != nil {
		return OutboxStats{}, fmt.Errorf("events: stats: %w", err)
	}
	return st, nil
}
