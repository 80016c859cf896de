package events

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/store/storetest"
)

// post sends an event to url as an Outbox would.
func post(t *testing.T, url, id, topic, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		req.Header.Set(HeaderID, id)
	}
	if topic != "" {
		req.Header.Set(HeaderTopic, topic)
	}
	req.Header.Set(HeaderTime, "2026-01-02T03:04:05.678Z")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestInboxConcurrentDuplicates: the same event POSTed by 8 goroutines at
// once is applied once, and every POST is answered 204.
func TestInboxConcurrentDuplicates(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		sub := newSubscriber(t, e.NewDB(t), "progress")
		srv := httptest.NewServer(sub.inbox)
		defer srv.Close()
		for round := range 5 {
			id := newID(time.Now())
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 8 {
				wg.Go(func() {
					<-start
					if code, body := post(t, srv.URL, id, "progress", `{"round":1}`); code != http.StatusNoContent {
						t.Errorf("answer %d %s, want 204", code, body)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := sub.applied(t)[id]; n != 1 {
				t.Errorf("round %d: applied %d times", round, n)
			}
		}
		if n := sub.runs.Load(); n != 5 {
			t.Errorf("the handler ran %d times for 5 events", n)
		}
	})
}

func TestInboxAnswers(t *testing.T) {
	db := storetest.SQLite.NewDB(t)
	sub := newSubscriber(t, db, "progress")
	var failing bool
	var got Event
	sub.inbox.Handle("flaky", func(ctx context.Context, tx *sql.Tx, ev Event) error {
		got = ev
		if failing {
			if _, err := tx.ExecContext(ctx, `INSERT INTO applied VALUES ($1, 'flaky', '', 0)`, ev.ID); err != nil {
				return err
			}
			return errors.New("disk on fire")
		}
		return nil
	})
	srv := httptest.NewServer(sub.inbox)
	defer srv.Close()

	for _, c := range []struct {
		name, id, topic, body string
		code                  int
		want                  string
	}{
		{"ok", "e1", "progress", `{"a":1}`, 204, ""},
		{"duplicate", "e1", "progress", `{"a":1}`, 204, ""},
		{"no id", "", "progress", `{}`, 400, "invalid_event"},
		{"bad id", "a b", "progress", `{}`, 400, "invalid_event"},
		{"no topic", "e2", "", `{}`, 400, "invalid_event"},
		{"unknown topic", "e3", "nobody-handles", `{}`, 404, "unknown_topic"},
		{"not JSON", "e4", "progress", `{`, 400, "invalid_event"},
		{"too big", "e5", "progress", `"` + strings.Repeat("x", MaxPayload) + `"`, 413, "payload_too_large"},
	} {
		code, body := post(t, srv.URL, c.id, c.topic, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, body, c.code, c.want)
		}
	}
	resp, err := http.Get(srv.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}

	// A failing handler rolls back (its write and the ID), answers 500;
	// the retry applies.
	failing = true
	if code, body := post(t, srv.URL, "f1", "flaky", `{"n":1}`); code != 500 || !strings.Contains(body, "disk on fire") {
		t.Errorf("failing handler: %d %s", code, body)
	}
	if n := sub.applied(t)["f1"]; n != 0 {
		t.Errorf("the failed handler's write was kept")
	}
	failing = false
	if code, body := post(t, srv.URL, "f1", "flaky", `{"n":1}`); code != 204 {
		t.Errorf("retry: %d %s", code, body)
	}
	want := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	if got.ID != "f1" || got.Topic != "flaky" || !bytes.Equal(got.Payload, []byte(`{"n":1}`)) || !got.CreatedAt.Equal(want) {
		t.Errorf("handler got %+v", got)
	}
	st, err := sub.inbox.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 2 || st.ByTopic["flaky"] != 1 || st.ByTopic["progress"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// deliver hands one event to in and returns once its ServeHTTP has, purge
// included (which runs after the answer is sent).
func deliver(t *testing.T, in *Inbox, id, topic, body string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTopic, topic)
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("delivering %s: %d %s", id, rec.Code, rec.Body)
	}
}

// TestInboxPurge: IDs older than the retention are forgotten, at most
// once a minute.
func TestInboxPurge(t *testing.T) {
	db := storetest.SQLite.NewDB(t)
	sub := newSubscriber(t, db, "progress")
	deliver(t, sub.inbox, "old", "progress", `1`)
	if _, err := db.Exec(`UPDATE `+inboxTable+` SET received_at = $1`, time.Now().Add(-InboxRetention-time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	deliver(t, sub.inbox, "new", "progress", `2`) // no purge: "old"'s delivery did one a moment ago
	sub.inbox.lastPurge.Store(0)                  // a minute later
	deliver(t, sub.inbox, "newer", "progress", `3`)
	st, err := sub.inbox.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Received != 2 {
		t.Errorf("%d IDs remembered, want 2 (new, newer)", st.Received)
	}
}

// TestInboxPurgeKeepsUp: a backlog of expired IDs larger than a batch
// goes in one sweep (the first delivery after a minute), not a batch a
// minute, which fell behind above ~8 events/s. The clock is the synctest
// bubble's.
func TestInboxPurgeKeepsUp(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db := storetest.SQLite.MustOpen(t, dir+"/subscriber.db")
		sub := newSubscriber(t, db, "progress")
		const backlog = 3*purgeBatch + 17
		err := db.Tx(t.Context(), func(tx *sql.Tx) error {
			for i := range backlog {
				if _, err := tx.Exec(`INSERT INTO `+inboxTable+` (id, topic, received_at) VALUES ($1, 'progress', $2)`,
					fmt.Sprint("old-", i), time.Now().UnixMilli()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(InboxRetention + time.Hour)
		deliver(t, sub.inbox, "new", "progress", `1`)
		st, err := sub.inbox.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Received != 1 {
			t.Errorf("%d IDs remembered after one sweep, want 1 (the new one; %d expired)", st.Received, backlog)
		}
	})
}

func TestHandlePanics(t *testing.T) {
	in := NewInbox(nil)
	h := func(context.Context, *sql.Tx, Event) error { return nil }
	in.Handle("a", h)
	for _, f := range []func(){
		func() { in.Handle("a", h) },
		func() { in.Handle("", h) },
		func() { in.Handle("b", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
