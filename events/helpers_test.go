package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// hosts is a Transport that sends http://<service>/… to the address of
// that service's test server: discovery, for tests.
type hosts struct {
	addr map[string]string
	next *http.Transport
}

func (h hosts) RoundTrip(req *http.Request) (*http.Response, error) {
	addr, ok := h.addr[req.URL.Hostname()]
	if !ok {
		req.Body.Close()
		return nil, fmt.Errorf("no service %q", req.URL.Hostname())
	}
	r := req.Clone(req.Context())
	r.URL.Host = addr
	return h.next.RoundTrip(r)
}

// serve starts a test server per service and returns a client that
// reaches them by name.
func serve(t *testing.T, services map[string]http.Handler) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	h := hosts{addr: map[string]string{}, next: tr}
	for name, handler := range services {
		srv := httptest.NewServer(handler)
		t.Cleanup(srv.Close)
		h.addr[name] = srv.Listener.Addr().String()
	}
	return &http.Client{Transport: h}
}

// inMemory is a Transport that calls the service's handler directly: no
// sockets, for tests in a synctest bubble.
type inMemory map[string]http.Handler

func (m inMemory) RoundTrip(req *http.Request) (*http.Response, error) {
	h, ok := m[req.URL.Hostname()]
	if !ok {
		return nil, fmt.Errorf("no service %q", req.URL.Hostname())
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// subscriber is a service with an Inbox whose handler records each
// application of an event in a table, applied, of its own database.
type subscriber struct {
	db    *store.DB
	inbox *Inbox
	runs  atomic.Int64 // handler runs, committed or not
}

func newSubscriber(t *testing.T, db *store.DB, topics ...string) *subscriber {
	t.Helper()
	s := &subscriber{db: db, inbox: NewInbox(db)}
	if err := s.inbox.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(t.Context(), "subscriber", []store.Migration{{SQL: `CREATE TABLE applied (event_id TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, created_at BIGINT NOT NULL)`}}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range topics {
		s.inbox.Handle(topic, func(ctx context.Context, tx *sql.Tx, ev Event) error {
			s.runs.Add(1)
			_, err := tx.ExecContext(ctx, `INSERT INTO applied (event_id, topic, payload, created_at) VALUES ($1, $2, $3, $4)`,
				ev.ID, ev.Topic, string(ev.Payload), ev.CreatedAt.UnixMilli())
			return err
		})
	}
	return s
}

// applied returns how many times each event was applied.
func (s *subscriber) applied(t *testing.T) map[string]int {
	t.Helper()
	rows, err := s.db.Query(`SELECT event_id, COUNT(*) FROM applied GROUP BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		m[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// newOutbox makes and migrates an Outbox on db.
func newOutbox(t *testing.T, db *store.DB, cfg OutboxConfig) *Outbox {
	t.Helper()
	o := NewOutbox(db, cfg)
	if err := o.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return o
}

// run runs o until the test ends (or stop is called), and fails the test
// if Run returns an error.
func run(t *testing.T, o *Outbox) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := o.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// publish publishes payload under topic in a transaction of its own.
func publish(t *testing.T, o *Outbox, topic string, payload any) Event {
	t.Helper()
	var ev Event
	err := o.db.Tx(t.Context(), func(tx *sql.Tx) error {
		var err error
		ev, err = o.Publish(t.Context(), tx, topic, payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// waitDelivered waits until o's database has no pending deliveries and
// want delivered ones.
func waitDelivered(t *testing.T, o *Outbox, want int64, within time.Duration) OutboxStats {
	t.Helper()
	return waitStats(t, o, within, func(st OutboxStats) bool { return st.Pending == 0 && st.Delivered == want })
}

// waitStats polls o's stats until ok accepts them, failing the test
// after within.
func waitStats(t *testing.T, o *Outbox, within time.Duration, ok func(OutboxStats) bool) OutboxStats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := o.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			js, _ := json.Marshal(st)
			t.Fatalf("after %v: stats %s", within, js)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
