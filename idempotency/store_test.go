package idempotency

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/store"
	"github.com/shoal-dev/shoal/store/storetest"
)

// transfer is a handler with an effect: it adds a row to transfers. With
// inTx it records its answer with Complete in the same transaction.
func transfer(db *store.DB, inTx bool, runs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		body := fmt.Appendf(nil, `{"transfer":%d}`, n)
		tx, err := db.BeginTx(r.Context(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(r.Context(), `INSERT INTO transfers (run) VALUES ($1)`, n); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if inTx {
			if err := FromContext(r.Context()).Complete(r.Context(), tx, http.StatusCreated, "application/json", body); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if err := tx.Commit(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
}

func createTransfers(t testing.TB, db *store.DB) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS transfers (run INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

// Two instances (two Stores over two *sql.DB on one file, each behind its
// own HTTP server) get the same request 20 times at once, as retries and
// hedges would send it: the effect happens once and everyone gets the same
// answer.
func TestConcurrentDuplicates(t *testing.T) {
	for _, inTx := range []bool{true, false} {
		t.Run(fmt.Sprintf("complete in tx %v", inTx), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "svc.db")
			dbs := []*store.DB{storetest.SQLite.MustOpen(t, path), storetest.SQLite.MustOpen(t, path)}
			createTransfers(t, dbs[0])
			var runs atomic.Int64
			var urls []string
			for _, db := range dbs {
				srv := httptest.NewServer(newStore(t, db, Config{}).Middleware(transfer(db, inTx, &runs)))
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL)
			}
			for round := range 3 {
				key := fmt.Sprint("key-", round)
				answers := make([]answer, 20)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range answers {
					wg.Go(func() {
						<-start
						answers[i] = send(t, http.DefaultClient, urls[i%2], "POST", "/transfers", key, `{"amount":10}`)
					})
				}
				close(start)
				wg.Wait()
				fresh := 0
				for i, a := range answers {
					if a.status != http.StatusCreated || a.body != answers[0].body {
						t.Errorf("round %d, caller %d: %d %q; want 201 %q", round, i, a.status, a.body, answers[0].body)
					}
					if !a.replayed {
						fresh++
					}
				}
				if fresh != 1 {
					t.Errorf("round %d: %d callers got a fresh answer, want 1", round, fresh)
				}
			}
			if n := runs.Load(); n != 3 {
				t.Errorf("handler ran %d times for 3 keys", n)
			}
			if n := countRows(t, dbs[1], `SELECT COUNT(*) FROM transfers`); n != 3 {
				t.Errorf("%d transfers for 3 keys", n)
			}
		})
	}
}

// abandon claims key as a request that then dies: nothing settles it.
func abandon(t *testing.T, s *Store, key, fp string, deadline time.Time) claimed {
	t.Helper()
	c, err := s.acquire(context.Background(), keyRef{key: key}, fp, deadline)
	if err != nil || c.answer != nil {
		t.Fatalf("claiming %s: %+v %v", key, c, err)
	}
	return c
}

// A claimant dies mid-request: a retry waits for its lease to end, then
// takes the key over and runs the request. The lease ends at the dead
// request's deadline if that came first. A retry whose own deadline ends
// first gets 409.
func TestLeaseTakeover(t *testing.T) {
	tests := []struct {
		name          string
		deadline      time.Duration // of the dead request; 0: none
		retryDeadline time.Duration // of the retry; 0: none
		wantStatus    int
		wantWait      time.Duration
	}{
		{"lease", 0, 0, 201, 30 * time.Second},
		{"dead request's deadline", 2 * time.Second, 0, 201, 2 * time.Second},
		{"retry gives up first", 0, 5 * time.Second, 409, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "svc.db")
			synctest.Test(t, func(t *testing.T) {
				db := storetest.SQLite.MustOpen(t, path)
				createTransfers(t, db)
				s := newStore(t, db, Config{Lease: 30 * time.Second})
				var runs atomic.Int64
				h := s.Middleware(transfer(db, true, &runs))
				body := `{"amount":10}`
				var deadline time.Time
				if tt.deadline > 0 {
					deadline = time.Now().Add(tt.deadline)
				}
				dead := abandon(t, s, "k", Fingerprint("POST", "/transfers", []byte(body)), deadline)

				ctx := context.Background()
				if tt.retryDeadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.retryDeadline)
					defer cancel()
				}
				start := time.Now()
				got := serve(h, ctx, "POST", "/transfers", "k", body)
				if waited := time.Since(start); got.status != tt.wantStatus || waited != tt.wantWait {
					t.Fatalf("retry: %d %s after %v; want %d after %v", got.status, got.body, waited, tt.wantStatus, tt.wantWait)
				}
				if tt.wantStatus != 201 {
					return
				}
				if runs.Load() != 1 || got.replayed {
					t.Errorf("retry: ran %d, replayed %v", runs.Load(), got.replayed)
				}
				// The dead claimant, had it only been slow, cannot commit.
				tx, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				late := &Claim{s: s, ref: keyRef{key: "k"}, token: dead.token}
				if err := late.Complete(context.Background(), tx, 200, "", nil); !errors.Is(err, ErrClaimLost) {
					t.Errorf("the first claimant's Complete: %v, want ErrClaimLost", err)
				}
			})
		})
	}
}

// A waiter replays the answer once the live claimant gives it.
func TestWaiterReplays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	synctest.Test(t, func(t *testing.T) {
		db := storetest.SQLite.MustOpen(t, path)
		s := newStore(t, db, Config{})
		release := make(chan struct{})
		var runs atomic.Int64
		h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			<-release
			time.Sleep(3 * time.Second) // working
			w.Write([]byte("done"))
		}))
		first := make(chan answer, 1)
		go func() { first <- serve(h, context.Background(), "POST", "/x", "k", "") }()
		synctest.Wait() // the first holds the key
		second := make(chan answer, 1)
		go func() { second <- serve(h, context.Background(), "POST", "/x", "k", "") }()
		close(release)
		a, b := <-first, <-second
		if a.body != "done" || a.replayed || b.body != "done" || !b.replayed || runs.Load() != 1 {
			t.Errorf("first %+v, second %+v, runs %d", a, b, runs.Load())
		}
	})
}

// Complete writes the answer in the handler's transaction: a rollback
// leaves neither the handler's write nor the key.
func TestCompleteInTx(t *testing.T) {
	tests := []struct {
		name       string
		rollback   bool
		answer     int // what the handler then answers
		wantKey    bool
		wantRows   int
		wantReplay bool
	}{
		{"commit", false, 201, true, 1, true},
		{"rollback, 503", true, 503, false, 0, false},
		{"rollback, 400", true, 400, true, 0, true}, // recorded outside the tx, as without Complete
		{"rollback, then commit in a new tx", true, 0, true, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
			createTransfers(t, db)
			s := newStore(t, db, Config{})
			var runs atomic.Int64
			h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				tx, err := db.BeginTx(r.Context(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer tx.Rollback()
				if _, err := tx.Exec(`INSERT INTO transfers (run) VALUES (1)`); err != nil {
					t.Error(err)
				}
				c := FromContext(r.Context())
				if err := c.Complete(r.Context(), tx, 201, "text/plain", []byte("sent")); err != nil {
					t.Error(err)
				}
				if err := c.Complete(r.Context(), tx, 201, "text/plain", []byte("sent")); !errors.Is(err, ErrClaimLost) {
					t.Errorf("Complete twice: %v, want ErrClaimLost", err)
				}
				if !tt.rollback {
					if err := tx.Commit(); err != nil {
						t.Error(err)
					}
					w.WriteHeader(201)
					w.Write([]byte("sent"))
					return
				}
				tx.Rollback()
				if tt.answer != 0 {
					w.WriteHeader(tt.answer)
					return
				}
				// Try again, as after a busy database.
				tx, err = db.BeginTx(r.Context(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				defer tx.Rollback()
				if _, err := tx.Exec(`INSERT INTO transfers (run) VALUES (2)`); err != nil {
					t.Error(err)
				}
				if err := c.Complete(r.Context(), tx, 201, "text/plain", []byte("sent")); err != nil {
					t.Errorf("Complete after a rollback: %v", err)
				}
				if err := tx.Commit(); err != nil {
					t.Error(err)
				}
				w.WriteHeader(201)
				w.Write([]byte("sent"))
			}))
			first := serve(h, context.Background(), "POST", "/t", "k", "")
			if want := cmp.Or(tt.answer, 201); first.status != want {
				t.Errorf("first: %+v", first)
			}
			if n := countRows(t, db, `SELECT COUNT(*) FROM transfers`); n != tt.wantRows {
				t.Errorf("%d rows, want %d", n, tt.wantRows)
			}
			if n := countRows(t, db, `SELECT COUNT(*) FROM `+Table); (n == 1) != tt.wantKey {
				t.Errorf("%d keys stored, want key %v", n, tt.wantKey)
			}
			again := serve(h, context.Background(), "POST", "/t", "k", "")
			if again.replayed != tt.wantReplay || again.status != first.status {
				t.Errorf("retry: %+v; want replayed %v of %+v", again, tt.wantReplay, first)
			}
		})
	}
}

func TestCompleteRejects(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{})
	c := &Claim{s: s, ref: keyRef{key: "k"}, token: "t"}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, status := range []int{0, 103, 500, 503} {
		if err := c.Complete(context.Background(), tx, status, "", nil); err == nil {
			t.Errorf("Complete with status %d succeeded", status)
		}
	}
	if err := c.Complete(context.Background(), nil, 200, "", nil); err == nil {
		t.Error("Complete with a nil tx succeeded")
	}
	if err := c.Complete(context.Background(), tx, 200, "", nil); !errors.Is(err, ErrClaimLost) {
		t.Errorf("Complete without a claim: %v, want ErrClaimLost", err)
	}
}

// Keys are forgotten after TTL: ignored at once, deleted by Run.
func TestTTL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	synctest.Test(t, func(t *testing.T) {
		db := storetest.SQLite.MustOpen(t, path)
		s := newStore(t, db, Config{TTL: time.Hour, PurgeInterval: 10 * time.Minute})
		var runs atomic.Int64
		h := s.Middleware(testHandler(&runs))
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()

		// Purges run at 0, 10 min, 20 min …; requests fall between them.
		time.Sleep(time.Minute)
		serve(h, context.Background(), "POST", "/ok", "old", "")
		time.Sleep(25 * time.Minute)
		serve(h, context.Background(), "POST", "/ok", "young", "")
		if got := serve(h, context.Background(), "POST", "/ok", "old", ""); !got.replayed {
			t.Errorf("within TTL: %+v, want a replay", got)
		}
		// At 1h05 the first key has expired (at 1h01), and is ignored
		// although no purge deleted it yet (the next one is at 1h10).
		time.Sleep(39 * time.Minute)
		if got := serve(h, context.Background(), "POST", "/ok", "old", "other body"); got.replayed || got.status != 200 {
			t.Errorf("after TTL: %+v, want a fresh answer", got)
		}
		if n := countRows(t, db, `SELECT COUNT(*) FROM `+Table); n != 2 {
			t.Errorf("%d keys at 1h05, want 2", n)
		}
		// At 1h35 the purge at 1h30 deleted "young" (expired at 1h26);
		// "old" was used again at 1h05 and lives until 2h05.
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		var keys []string
		rows, err := db.Query(`SELECT idem_key FROM ` + Table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			rows.Scan(&k)
			keys = append(keys, k)
		}
		rows.Close()
		if len(keys) != 1 || keys[0] != "old" {
			t.Errorf("keys at 1h35: %q, want [old]", keys)
		}
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestPurgeBatches(t *testing.T) {
	db := storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "svc.db"))
	s := newStore(t, db, Config{})
	past := time.Now().Add(-time.Minute).UnixMilli()
	err := db.Tx(t.Context(), func(tx *sql.Tx) error {
		for i := range 2*purgeBatch + 7 {
			if _, err := tx.Exec(`INSERT INTO `+Table+` VALUES ('', '', $1, 'fp', 't', 200, 0, $2, '', X'')`, fmt.Sprint(i), past); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO `+Table+` VALUES ('', '', 'live', 'fp', 't', 200, 0, $1, '', X'')`, time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(context.Background())
	if err != nil || n != 2*purgeBatch+7 {
		t.Errorf("Purge = %d, %v; want %d", n, err, 2*purgeBatch+7)
	}
	if n := countRows(t, db, `SELECT COUNT(*) FROM `+Table); n != 1 {
		t.Errorf("%d keys left, want 1", n)
	}
}

// Several instances migrate one file at once.
func TestMigrateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	if err := storetest.SQLite.MustOpen(t, path).Ping(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		db := storetest.SQLite.MustOpen(t, path)
		wg.Go(func() {
			s, err := New(db, Config{})
			if err == nil {
				err = s.Migrate(context.Background())
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}

// On PostgreSQL, instances migrate at once (under the store's lock), and
// answers are stored as BYTEA: any bytes come back as they were.
func TestPostgres(t *testing.T) {
	dsn := storetest.Postgres(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		db, err := store.OpenPostgres(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		wg.Go(func() {
			stores[i], errs[i] = New(db, Config{})
			if errs[i] == nil {
				errs[i] = stores[i].Migrate(t.Context())
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	binary := string([]byte{0xff, 0x00, 0xfe, 'x'})
	var runs atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte(binary))
	})
	first := serve(stores[0].Middleware(h), t.Context(), "POST", "/b", "k", "")
	again := serve(stores[3].Middleware(h), t.Context(), "POST", "/b", "k", "")
	if first.body != binary || again.body != binary || !again.replayed || runs.Load() != 1 {
		t.Errorf("first %+v, replay %+v, %d runs", first, again, runs.Load())
	}
}

// A busy database (the write lock held by another process past the busy
// timeout, here none) is retried for as long as the request lasts; other
// errors answer 503 at once.
func TestBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	synctest.Test(t, func(t *testing.T) {
		// No busy_timeout: a held lock fails statements at once.
		sqldb, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		defer sqldb.Close()
		db := &store.DB{DB: sqldb, Dialect: store.SQLite}
		other := storetest.SQLite.MustOpen(t, path)
		newStore(t, other, Config{})  // migrated
		blocker, err := other.Begin() // IMMEDIATE: holds the write lock
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(time.Second)
			blocker.Rollback()
		}()
		s, err := New(db, Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int64
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got := serve(s.Middleware(testHandler(&runs)), ctx, "POST", "/ok", "k", "")
		if got.status != 200 || runs.Load() != 1 || time.Since(start) < time.Second {
			t.Errorf("%+v after %v, %d runs; want 200 once the lock is free (1s)", got, time.Since(start), runs.Load())
		}
	})
	// Not busy: a table missing (not migrated) fails at once.
	s, err := New(storetest.SQLite.MustOpen(t, filepath.Join(t.TempDir(), "new.db")), Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	if got := serve(s.Middleware(testHandler(&runs)), context.Background(), "POST", "/ok", "k", ""); got.status != 503 || runs.Load() != 0 {
		t.Errorf("without the table: %+v, %d runs; want 503", got, runs.Load())
	}
}
