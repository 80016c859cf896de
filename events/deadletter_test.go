package events

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/store/storetest"
)

// fakeMetrics records what an Outbox reports.
type fakeMetrics struct {
	mu          sync.Mutex
	deliveries  map[string]int // "topic service outcome"
	dead        map[string]int // "topic service"
	deadLetters []int64        // every report, in order
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{deliveries: map[string]int{}, dead: map[string]int{}}
}

func (m *fakeMetrics) Delivery(topic, service, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries[topic+" "+service+" "+outcome]++
}

func (m *fakeMetrics) DeadLettered(topic, service string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead[topic+" "+service]++
}

func (m *fakeMetrics) DeadLetters(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deadLetters = append(m.deadLetters, n)
}

// failing answers every delivery 500 until fixed, then passes them to next.
type failing struct {
	fixed atomic.Bool
	next  http.Handler
}

func (f *failing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.fixed.Load() {
		http.Error(w, "subscriber bug", http.StatusInternalServerError)
		return
	}
	f.next.ServeHTTP(w, r)
}

// TestDeadLetters: a subscriber that always fails gets MaxAttempts tries,
// then its deliveries move to the dead letters, logged and counted; the
// other subscriber is not held up. Once fixed, Redeliver brings them back
// and they are delivered.
func TestDeadLetters(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		history := newSubscriber(t, e.NewDB(t), "progress")
		recs := newSubscriber(t, e.NewDB(t), "progress")
		broken := &failing{next: history.inbox}
		var logs bytes.Buffer // read once Run has returned
		metrics := newFakeMetrics()
		o := newOutbox(t, e.NewDB(t), OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history", "recommendations"}},
			Client:      serve(t, map[string]http.Handler{"history": broken, "recommendations": recs.inbox}),
			Poll:        10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			MaxAttempts: 3,
			// As the SDK's logger: it names the producer's service.
			Logger:  slog.New(slog.NewJSONHandler(&logs, nil)).With("service", "playback"),
			Metrics: metrics,
		})
		stop := run(t, o)
		a := publish(t, o, "progress", progress{Profile: "ann", Seconds: 1})
		b := publish(t, o, "progress", progress{Profile: "bob", Seconds: 2})
		st := waitStats(t, o, 10*time.Second, func(st OutboxStats) bool { return st.DeadLetters == 2 && st.Pending == 0 })
		if st.Delivered != 2 || st.Events != 2 {
			t.Errorf("stats %+v: want recommendations' 2 delivered, history's 2 dead", st)
		}
		dls, err := o.DeadLetters(t.Context(), DeadLetterFilter{Service: "history"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, dl := range dls {
			ids = append(ids, dl.Event.ID)
			if dl.Attempts != 3 || !strings.Contains(dl.LastError, "500") || dl.Event.Topic != "progress" ||
				len(dl.Event.Payload) == 0 || dl.DeadAt.IsZero() {
				t.Errorf("dead letter %+v", dl)
			}
		}
		// IDs sort by the millisecond only: a and b may share one.
		want := []string{a.ID, b.ID}
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("dead letters %q, want %q", ids, want)
		}
		if other, err := o.DeadLetters(t.Context(), DeadLetterFilter{Topic: "progress", Service: "recommendations"}, 10); err != nil || len(other) != 0 {
			t.Errorf("recommendations' dead letters: %v, %v; want none", other, err)
		}
		stop() // Run is done writing logs and metrics
		metrics.mu.Lock()
		if got := metrics.deliveries["progress history failed"]; got != 6 {
			t.Errorf("%d failed attempts counted, want 6", got)
		}
		if got := metrics.dead["progress history"]; got != 2 {
			t.Errorf("%d dead-lettered counted, want 2", got)
		}
		if got := metrics.deadLetters; len(got) == 0 || got[len(got)-1] != 2 {
			t.Errorf("dead letters reported %v, want the last to be 2", got)
		}
		metrics.mu.Unlock()
		if n := strings.Count(logs.String(), "moved to the dead letters"); n != 2 {
			t.Errorf("%d dead-letter log lines, want 2:\n%s", n, logs.String())
		}
		// The subscriber has a key of its own: "service" is the producer's.
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "events: delivery") &&
				(strings.Count(line, `"service":`) != 1 || !strings.Contains(line, `"subscriber":"history"`)) {
				t.Errorf("log line %s: want one service key (the producer's) and subscriber history", line)
			}
		}

		broken.fixed.Store(true)
		run(t, o)
		n, err := o.Redeliver(t.Context(), DeadLetterFilter{Service: "history"})
		if err != nil || n != 2 {
			t.Fatalf("Redeliver = %d, %v; want 2", n, err)
		}
		waitStats(t, o, 10*time.Second, func(st OutboxStats) bool { return st.Delivered == 4 && st.DeadLetters == 0 && st.Pending == 0 })
		if got := history.applied(t); got[a.ID] != 1 || got[b.ID] != 1 {
			t.Errorf("history applied %v", got)
		}
	})
}

// stopAtSecondDead is fakeMetrics that stops Run (cancel) as the second
// delivery is moved to the dead letters, before Run counts them.
type stopAtSecondDead struct {
	*fakeMetrics
	cancel context.CancelFunc
}

func (m stopAtSecondDead) DeadLettered(topic, service string) {
	m.fakeMetrics.DeadLettered(topic, service)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead[topic+" "+service] == 2 {
		m.cancel()
	}
}

// TestDeadLetterCountAtStop: Run stopped right after it added dead
// letters, with the count it makes after adding some cut short, counts
// them before it returns. (TestDeadLetters saw the count it had made
// before, 1, under load: its stop came between the two.)
func TestDeadLetterCountAtStop(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx, cancel := context.WithCancel(context.Background())
		metrics := stopAtSecondDead{newFakeMetrics(), cancel}
		o := newOutbox(t, e.NewDB(t), OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Client:      serve(t, map[string]http.Handler{"history": &failing{}}),
			Poll:        10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			MaxAttempts: 1,
			Metrics:     metrics,
		})
		publish(t, o, "progress", progress{Profile: "ann", Seconds: 1})
		publish(t, o, "progress", progress{Profile: "bob", Seconds: 2})
		if err := o.Run(ctx); err != nil {
			t.Fatal(err)
		}
		metrics.mu.Lock()
		defer metrics.mu.Unlock()
		if got := metrics.deadLetters; len(got) == 0 || got[len(got)-1] != 2 {
			t.Errorf("dead letters reported %v, want the last to be 2", got)
		}
	})
}

// TestDeadLetterMaxAge: with the default bounds, a delivery failing for a
// day moves to the dead letters instead of staying pending forever; with
// the 4-hour backoff and the 30-minute poll this test sets (to keep the
// bubble's work small), that is about 20 attempts. Timers in a synctest
// bubble; requests in memory.
func TestDeadLetterMaxAge(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		db := storetest.SQLite.MustOpen(t, dir+"/producer.db")
		var attempts atomic.Int64
		down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			attempts.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
		})
		o := newOutbox(t, db, OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Client:      &http.Client{Transport: inMemory{"history": down}},
			MaxBackoff:  4 * time.Hour,
			Poll:        30 * time.Minute,
			Logger:      slog.New(slog.DiscardHandler),
		})
		stop := run(t, o)
		publish(t, o, "progress", progress{Profile: "ann"})
		time.Sleep(23 * time.Hour)
		st, err := o.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 1 {
			t.Fatalf("after 23 h: %+v, want it still pending", st)
		}
		time.Sleep(6 * time.Hour) // the first failure after 24 h gives up
		stop()
		if st, err = o.Stats(ctx); err != nil {
			t.Fatal(err)
		}
		if st.Pending != 0 {
			t.Fatalf("after 29 h of failures: %+v, want the delivery given up on", st)
		}
		if st.DeadLetters != 1 {
			t.Errorf("%+v, want one dead letter", st)
		}
		if n := attempts.Load(); n < 5 || n > 60 {
			t.Errorf("%d attempts", n)
		}
	})
}

// TestDeliveryPanics: a panic while delivering (here in the client's
// transport) is recovered, logged with its stack and counted, and the
// delivery is retried, or dead-lettered at its bound: never lost.
func TestDeliveryPanics(t *testing.T) {
	sub := newSubscriber(t, storetest.SQLite.NewDB(t), "progress")
	var panics atomic.Int64
	transport := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Hostname() == "history" && panics.Add(1) <= 2 {
			panic("transport bug")
		}
		return inMemory{"history": sub.inbox, "recommendations": sub.inbox}.RoundTrip(r)
	})
	var logs bytes.Buffer // read once Run has returned
	metrics := newFakeMetrics()
	o := newOutbox(t, storetest.SQLite.NewDB(t), OutboxConfig{
		Subscribers: map[string][]string{"progress": {"history"}},
		Client:      &http.Client{Transport: transport},
		Poll:        10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics: metrics,
	})
	stop := run(t, o)
	ev := publish(t, o, "progress", progress{Profile: "ann"})
	waitDelivered(t, o, 1, 10*time.Second)
	stop()
	if got := sub.applied(t)[ev.ID]; got != 1 {
		t.Errorf("applied %d times, want 1", got)
	}
	metrics.mu.Lock()
	if got := metrics.deliveries["progress history panicked"]; got != 2 {
		t.Errorf("%d panicked attempts counted, want 2", got)
	}
	metrics.mu.Unlock()
	if n := strings.Count(logs.String(), "delivery panicked"); n != 2 || !strings.Contains(logs.String(), "deliver.go") {
		t.Errorf("%d panic log lines, want 2 with a stack:\n%s", n, logs.String())
	}

	// Panicking every time: dead-lettered after MaxAttempts, not lost.
	always := newOutbox(t, storetest.SQLite.NewDB(t), OutboxConfig{
		Subscribers: map[string][]string{"progress": {"history"}},
		Client: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			panic("always")
		})},
		Poll: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		MaxAttempts: 2, Logger: slog.New(slog.DiscardHandler),
	})
	run(t, always)
	publish(t, always, "progress", progress{Profile: "bob"})
	st := waitStats(t, always, 10*time.Second, func(st OutboxStats) bool { return st.DeadLetters == 1 })
	dls, err := always.DeadLetters(t.Context(), DeadLetterFilter{}, 10)
	if err != nil || len(dls) != 1 || !strings.Contains(dls[0].LastError, "panicked: always") {
		t.Errorf("stats %+v, dead letters %+v (%v)", st, dls, err)
	}
}

// TestPurgeDeadLetters: dead letters go after DeadLetterRetention, and
// their events with them; until then the events stay.
func TestPurgeDeadLetters(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		o := newOutbox(t, e.NewDB(t), OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Client:      serve(t, map[string]http.Handler{"history": &failing{}}),
			Poll:        10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler),
		})
		stop := run(t, o)
		publish(t, o, "progress", progress{Profile: "ann"})
		waitStats(t, o, 10*time.Second, func(st OutboxStats) bool { return st.DeadLetters == 1 })
		stop()
		for _, tt := range []struct {
			after                   time.Duration
			wantEvents, wantLetters int64
		}{
			{DefaultRetention + time.Minute, 1, 1}, // past Retention: kept for its dead letter
			{DefaultDeadLetterRetention + time.Minute, 0, 0},
		} {
			if err := o.purge(t.Context(), time.Now().Add(tt.after)); err != nil {
				t.Fatal(err)
			}
			st, err := o.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != tt.wantEvents || st.DeadLetters != tt.wantLetters {
				t.Errorf("purged as of %v later: %+v, want %d events, %d dead letters", tt.after, st, tt.wantEvents, tt.wantLetters)
			}
		}
	})
}

// TestMigrateOutboxV1: deliveries pending in a database of the first
// schema count their age from their event's creation.
func TestMigrateOutboxV1(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		db := e.NewDB(t)
		if err := db.Migrate(t.Context(), outboxMigrations, outboxSchema[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO ` + eventsTable + ` VALUES ('e1', 'progress', '1', 1234);
			INSERT INTO ` + deliveriesTable + ` VALUES ('e1', 'history', 2, 0, 0, NULL, 'down')`); err != nil {
			t.Fatal(err)
		}
		newOutbox(t, db, OutboxConfig{})
		var since int64
		if err := db.QueryRow(`SELECT pending_since FROM ` + deliveriesTable).Scan(&since); err != nil || since != 1234 {
			t.Errorf("pending_since = %d, %v; want 1234", since, err)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
