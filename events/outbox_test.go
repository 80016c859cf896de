package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

type progress struct {
	Profile string `json:"profile"`
	Title   int    `json:"title"`
	Seconds int    `json:"seconds"`
}

// TestPublishDelivers: events published in committed transactions reach
// every subscriber once; a rolled-back transaction publishes nothing.
func TestPublishDelivers(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		ctx := t.Context()
		history := newSubscriber(t, e.NewDB(t), "progress")
		recs := newSubscriber(t, e.NewDB(t), "progress", "rating")
		client := serve(t, map[string]http.Handler{"history": history.inbox, "recommendations": recs.inbox})
		db := e.NewDB(t)
		if err := db.Migrate(ctx, "playback", []store.Migration{{SQL: `CREATE TABLE positions (profile TEXT PRIMARY KEY, seconds INTEGER NOT NULL)`}}); err != nil {
			t.Fatal(err)
		}
		o := newOutbox(t, db, OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history", "recommendations"}, "rating": {"recommendations"}},
			Client:      client,
		})
		run(t, o)

		const n = 20
		sent := map[string]string{}
		for i := range n {
			p := progress{Profile: "ann", Title: 7, Seconds: i}
			var ev Event
			err := db.Tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO positions (profile, seconds) VALUES ($1, $2)
					ON CONFLICT (profile) DO UPDATE SET seconds = excluded.seconds`, p.Profile, p.Seconds); err != nil {
					return err
				}
				var err error
				ev, err = o.Publish(ctx, tx, "progress", p)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			sent[ev.ID] = string(ev.Payload)
		}
		rating := publish(t, o, "rating", map[string]int{"score": 5})
		errRollback := errors.New("changed my mind")
		var ghost Event
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			var err error
			ghost, err = o.Publish(ctx, tx, "progress", progress{Profile: "ghost"})
			if err != nil {
				return err
			}
			return errRollback
		})
		if err != errRollback {
			t.Fatal(err)
		}

		st := waitDelivered(t, o, 2*n+1, 10*time.Second)
		if st.Events != n+1 || st.Retrying != 0 || len(st.Routes) != 3 {
			t.Errorf("stats %+v", st)
		}
		for _, sub := range []*subscriber{history, recs} {
			got := sub.applied(t)
			for id := range sent {
				if got[id] != 1 {
					t.Errorf("event %s applied %d times", id, got[id])
				}
			}
			if got[ghost.ID] != 0 {
				t.Errorf("the rolled-back event was delivered")
			}
		}
		if got := history.applied(t)[rating.ID]; got != 0 {
			t.Errorf("history got a rating event it did not subscribe to")
		}
		if got := recs.applied(t)[rating.ID]; got != 1 {
			t.Errorf("rating event applied %d times by recommendations", got)
		}
		// Payloads and times arrive as published.
		var payload string
		var created int64
		for id, want := range sent {
			if err := history.db.QueryRow(`SELECT payload, created_at FROM applied WHERE event_id = $1`, id).Scan(&payload, &created); err != nil {
				t.Fatal(err)
			}
			if payload != want || created <= 0 {
				t.Errorf("event %s arrived as %s at %d, want %s", id, payload, created, want)
			}
			break
		}
		ist, err := recs.inbox.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ist.Received != n+1 || ist.ByTopic["rating"] != 1 {
			t.Errorf("inbox stats %+v", ist)
		}
	})
}

func TestPublishErrors(t *testing.T) {
	db := storetest.SQLite.NewDB(t)
	o := newOutbox(t, db, OutboxConfig{Subscribers: map[string][]string{"a": {"svc"}}})
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		_, err := o.Publish(t.Context(), tx, "b", 1)
		return err
	})
	if !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	err = db.Tx(t.Context(), func(tx *sql.Tx) error {
		_, err := o.Publish(t.Context(), tx, "a", make(chan int))
		return err
	})
	if err == nil {
		t.Error("unmarshalable payload: no error")
	}
	if err := o.Run(t.Context()); err == nil {
		t.Error("Run without a Client: no error")
	}
}

func TestConfigValidate(t *testing.T) {
	c := &http.Client{}
	for _, tc := range []struct {
		cfg OutboxConfig
		ok  bool
	}{
		{OutboxConfig{Client: c}, true},
		{OutboxConfig{}, false},
		{OutboxConfig{Client: c, Subscribers: map[string][]string{"bad topic": {"a"}}}, false},
		{OutboxConfig{Client: c, Subscribers: map[string][]string{"t": {"a/b"}}}, false},
		{OutboxConfig{Client: c, Lease: time.Second, Timeout: 2 * time.Second}, false},
		{OutboxConfig{Client: c, Poll: -1}, false},
		{OutboxConfig{Client: c, MinBackoff: time.Minute}, false},
		{OutboxConfig{Client: c, MaxAttempts: 5, MaxAge: time.Hour, DeadLetterRetention: time.Hour}, true},
		{OutboxConfig{Client: c, MaxAttempts: -1}, false},
		{OutboxConfig{Client: c, MaxAge: -time.Second}, false},
		{OutboxConfig{Client: c, DeadLetterRetention: -time.Second}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v", tc.cfg, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	o := NewOutbox(nil, OutboxConfig{MinBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second})
	for attempts := 1; attempts <= 100; attempts++ {
		want := min(100*time.Millisecond<<min(attempts-1, 20), 10*time.Second)
		if d := o.backoff(attempts); d < want/2 || d > want {
			t.Errorf("backoff(%d) = %v, want %v..%v", attempts, d, want/2, want)
		}
	}
}

func TestEventID(t *testing.T) {
	uuid7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	now := time.Now()
	a, b := newID(now), newID(now.Add(time.Millisecond))
	if !uuid7.MatchString(a) || a == newID(now) || !(a < b) || !validID(a) {
		t.Errorf("IDs %s, %s: want distinct UUIDv7s in time order", a, b)
	}
}

// TestRetryBackoff: a subscriber that fails three times gets the event on
// the fourth attempt, each after a longer backoff. Timers in a synctest
// bubble; requests in memory.
func TestRetryBackoff(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		pdb := storetest.SQLite.MustOpen(t, dir+"/producer.db")
		sdb := storetest.SQLite.MustOpen(t, dir+"/subscriber.db")
		sub := newSubscriber(t, sdb, "progress")
		var mu sync.Mutex
		var attempts []time.Time
		flaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			attempts = append(attempts, time.Now())
			n := len(attempts)
			mu.Unlock()
			if n <= 3 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			sub.inbox.ServeHTTP(w, r)
		})
		o := newOutbox(t, pdb, OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Client:      &http.Client{Transport: inMemory{"history": flaky}},
			MinBackoff:  time.Second, MaxBackoff: 3 * time.Second, Poll: 100 * time.Millisecond,
		})
		stop := run(t, o)
		start := time.Now()
		ev := publish(t, o, "progress", progress{Profile: "ann", Seconds: 1})
		time.Sleep(time.Minute)
		stop()
		if len(attempts) != 4 || sub.applied(t)[ev.ID] != 1 {
			t.Fatalf("%d attempts, applied %d times; want 4, 1", len(attempts), sub.applied(t)[ev.ID])
		}
		// Backoff after the n-th failure: 1s·2^(n-1), capped at 3s,
		// jittered to [half, all], plus up to a Poll to notice.
		if d := attempts[0].Sub(start); d > 100*time.Millisecond {
			t.Errorf("first attempt after %v, want at once (Publish wakes Run)", d)
		}
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
			gap := attempts[i+1].Sub(attempts[i])
			if gap < want/2 || gap > want+100*time.Millisecond {
				t.Errorf("attempt %d came %v after the previous, want %v..%v", i+2, gap, want/2, want+100*time.Millisecond)
			}
		}
		st, err := o.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Delivered != 1 || st.Pending != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestTwoOutboxes: two producer instances (separate pools on one
// database) share the deliveries; acknowledgements lost on the way back
// make the producers deliver again; each event applies exactly once.
func TestTwoOutboxes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		history := newSubscriber(t, e.NewDB(t), "progress")
		recs := newSubscriber(t, e.NewDB(t), "progress")
		var posts, lost atomic.Int64
		lossy := func(in *Inbox) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				posts.Add(1)
				rec := httptest.NewRecorder()
				in.ServeHTTP(rec, r)
				if rec.Code == http.StatusNoContent && rand.N(5) == 0 { // applied, but the answer is lost
					lost.Add(1)
					http.Error(w, "lost", http.StatusBadGateway)
					return
				}
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
			})
		}
		client := serve(t, map[string]http.Handler{"history": lossy(history.inbox), "recommendations": lossy(recs.inbox)})
		where := e.Place(t)
		cfg := OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history", "recommendations"}},
			Client:      client, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: 20 * time.Millisecond,
			Batch: 16, Concurrency: 8,
		}
		a := newOutbox(t, e.MustOpen(t, where), cfg)
		b := newOutbox(t, e.MustOpen(t, where), cfg)
		run(t, a)
		run(t, b)
		const each = 50
		var wg sync.WaitGroup
		for _, o := range []*Outbox{a, b} {
			wg.Go(func() {
				for i := range each {
					publish(t, o, "progress", progress{Profile: fmt.Sprint(i), Seconds: i})
				}
			})
		}
		wg.Wait()
		waitDelivered(t, a, 4*each, 30*time.Second)
		for _, sub := range []*subscriber{history, recs} {
			got := sub.applied(t)
			if len(got) != 2*each {
				t.Errorf("%d events applied, want %d", len(got), 2*each)
			}
			for id, n := range got {
				if n != 1 {
					t.Errorf("event %s applied %d times", id, n)
				}
			}
		}
		t.Logf("%d POSTs for %d deliveries, %d answers lost", posts.Load(), 4*each, lost.Load())
		if lost.Load() == 0 || posts.Load() < 4*each+lost.Load() {
			t.Errorf("%d POSTs, %d lost answers: the test did not exercise redelivery", posts.Load(), lost.Load())
		}
	})
}

// TestKilledOutbox: an instance that claimed deliveries and died holds
// them for its lease; another instance delivers them once it has passed.
func TestKilledOutbox(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		sub := newSubscriber(t, e.NewDB(t), "progress")
		client := serve(t, map[string]http.Handler{"history": sub.inbox})
		where := e.Place(t)
		cfg := OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Client:      client, Lease: time.Second, Timeout: 500 * time.Millisecond, Poll: 20 * time.Millisecond,
		}
		dead := newOutbox(t, e.MustOpen(t, where), cfg)
		for i := range 5 {
			publish(t, dead, "progress", progress{Seconds: i})
		}
		claimed, err := dead.claim(t.Context(), 10) // and then it died
		if err != nil || len(claimed) != 5 {
			t.Fatalf("claimed %d (%v), want 5", len(claimed), err)
		}
		leaseEnd := claimed[0].lease
		other := newOutbox(t, e.MustOpen(t, where), cfg)
		run(t, other)
		for time.Now().UnixMilli() < leaseEnd-200 {
			asked := time.Now().UnixMilli()
			if st, _ := other.Stats(t.Context()); st.Delivered != 0 && asked < leaseEnd {
				t.Fatalf("delivered %d while the dead instance's lease held", st.Delivered)
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitDelivered(t, other, 5, 10*time.Second)
		var first int64
		if err := other.db.QueryRow(`SELECT MIN(delivered_at) FROM ` + deliveriesTable).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first < leaseEnd {
			t.Errorf("delivered %dms before the dead instance's lease ended", leaseEnd-first)
		}
		if n := len(sub.applied(t)); n != 5 {
			t.Errorf("%d events applied, want 5", n)
		}
	})
}

// TestStopReleases: an instance stopped (its ctx ended) while delivering
// releases its claims: another delivers them at once, not after the lease.
func TestStopReleases(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		sub := newSubscriber(t, e.NewDB(t), "progress")
		arrived := make(chan struct{}, 10)
		hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server watches the connection
			arrived <- struct{}{}
			<-r.Context().Done() // until the producer gives up
		})
		where := e.Place(t)
		cfg := OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}},
			Lease:       time.Minute, Timeout: 30 * time.Second, Poll: 20 * time.Millisecond,
		}
		cfg.Client = serve(t, map[string]http.Handler{"history": hang})
		first := newOutbox(t, e.MustOpen(t, where), cfg)
		publish(t, first, "progress", progress{Seconds: 1})
		stop := run(t, first)
		<-arrived
		stop()
		cfg.Client = serve(t, map[string]http.Handler{"history": sub.inbox})
		second := newOutbox(t, e.MustOpen(t, where), cfg)
		run(t, second)
		st := waitDelivered(t, second, 1, 5*time.Second)
		if st.Retrying != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestPurge: delivered rows and finished events go after Retention;
// pending ones stay.
func TestPurge(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		sub := newSubscriber(t, e.NewDB(t), "progress")
		o := newOutbox(t, e.NewDB(t), OutboxConfig{
			Subscribers: map[string][]string{"progress": {"history"}, "other": {"nobody"}},
			Client:      serve(t, map[string]http.Handler{"history": sub.inbox}),
			Poll:        20 * time.Millisecond,
		})
		stop := run(t, o)
		publish(t, o, "progress", 1)
		publish(t, o, "other", 2) // to a service that does not exist: stays pending
		waitStats(t, o, 5*time.Second, func(st OutboxStats) bool { return st.Delivered == 1 && st.Retrying == 1 })
		stop()
		if err := o.purge(t.Context(), time.Now().Add(DefaultRetention+time.Minute)); err != nil {
			t.Fatal(err)
		}
		st, err := o.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Events != 1 || st.Delivered != 0 || st.Pending != 1 {
			t.Errorf("after purge: %+v, want the pending event only", st)
		}
		var lastError string
		if err := o.db.QueryRow(`SELECT last_error FROM ` + deliveriesTable).Scan(&lastError); err != nil {
			t.Fatal(err)
		}
		if lastError == "" {
			t.Error("a failed delivery has no last_error")
		}
		js, _ := json.Marshal(st)
		t.Logf("%s; last error: %s", js, lastError)
	})
}
