package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/idempotency"
)

func openTestStore(t *testing.T, path string) *store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := openStore(ctx, path, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func checkSchema(t *testing.T, st *store) {
	t.Helper()
	var version int
	var mode string
	if err := st.db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := st.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if version != len(schema) || mode != "wal" {
		t.Errorf("user_version %d, journal_mode %q; want %d, wal", version, mode, len(schema))
	}
	var tables []string
	rows, err := st.db.Query(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if want := []string{"ratings", idempotency.Table}; !slices.Equal(tables, want) {
		t.Errorf("tables %q, want %q", tables, want)
	}
}

// Three instances of the service start at once on a new file: each must
// open it, and the schema must end up applied exactly once.
func TestMigrationsConcurrent(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "ratings.db")
		start := make(chan struct{})
		stores := make([]*store, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range stores {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				stores[i], errs[i] = openStore(ctx, path, idempotency.Config{})
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: instance %d: %v", round, i, err)
			}
			defer stores[i].Close()
		}
		for _, st := range stores {
			checkSchema(t, st)
		}
		// And they all write to it.
		for i, st := range stores {
			if _, err := st.put(context.Background(), nil, Rating{Profile: "p", Title: int64(i + 1), Score: 3}); err != nil {
				t.Fatalf("round %d: write through instance %d: %v", round, i, err)
			}
		}
	}
}

// The same, with three real processes (the test binary re-run as a
// helper), as `shoal up` starts them: SQLite's locks between processes are
// file locks, not the in-process ones.
func TestMigrationsInThreeProcesses(t *testing.T) {
	if os.Getenv("RATINGS_HELPER_DB") != "" {
		t.Skip("helper process")
	}
	path := filepath.Join(t.TempDir(), "ratings.db")
	cmds := make([]*exec.Cmd, 3)
	outs := make([][]byte, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperOpenAndWrite$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "RATINGS_HELPER_DB="+path, fmt.Sprint("RATINGS_HELPER_N=", i))
		wg.Go(func() { outs[i], errs[i] = cmds[i].CombinedOutput() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	st := openTestStore(t, path)
	checkSchema(t, st)
	var n int
	if err := st.db.QueryRow("SELECT COUNT(*) FROM ratings").Scan(&n); err != nil || n != 3 {
		t.Errorf("%d ratings (%v), want one per process", n, err)
	}
}

// TestHelperOpenAndWrite is the child of TestMigrationsInThreeProcesses.
func TestHelperOpenAndWrite(t *testing.T) {
	path := os.Getenv("RATINGS_HELPER_DB")
	if path == "" {
		t.Skip("run by TestMigrationsInThreeProcesses")
	}
	n := os.Getenv("RATINGS_HELPER_N")
	st := openTestStore(t, path)
	if _, err := st.put(context.Background(), nil, Rating{Profile: "proc-" + n, Title: 1, Score: 4}); err != nil {
		t.Fatal(err)
	}
}

// Two instances (two *sql.DB on one file, each behind its own server)
// take writes at once, half of them with the same idempotency key as the
// other, as failover and hedging send them: every key applies once, and
// every write is either applied or replayed with the original answer.
func TestConcurrentWritersTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ratings.db")
	var urls []string
	var stores []*store
	for range 2 {
		st := openTestStore(t, path)
		srv := httptest.NewServer(newHandler(st))
		t.Cleanup(srv.Close)
		urls, stores = append(urls, srv.URL), append(stores, st)
	}
	const writers, perWriter = 8, 25
	type outcome struct {
		key      string
		status   int
		replayed bool
		body     string
		from     int
	}
	results := make(chan outcome, 2*writers*perWriter)
	var wg sync.WaitGroup
	for h, url := range urls {
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					// Keys k-w-i are shared by both instances; the rating
					// is the same for the same key, as a retry would be.
					key := fmt.Sprintf("k-%d-%d", w, i)
					body := fmt.Sprintf(`{"score":%d}`, 1+(w+i)%5)
					if i%2 == 1 { // odd ones: a key of this instance only
						key = fmt.Sprintf("h%d-%s", h, key)
					}
					req, err := http.NewRequest("PUT", fmt.Sprintf("%s/ratings/p%d/%d", url, w, i+1), strings.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					req.Header.Set(idempotency.KeyHeader, key)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Error(err)
					}
					results <- outcome{key, resp.StatusCode, resp.Header.Get(idempotency.ReplayedHeader) == "true", string(b), h}
				}
			})
		}
	}
	wg.Wait()
	close(results)
	applied := map[string]int{}
	bodies := map[string][]string{}
	total := 0
	for o := range results {
		total++
		if o.status != 200 {
			t.Fatalf("%s via instance %d: %d %s", o.key, o.from, o.status, o.body)
		}
		if !o.replayed {
			applied[o.key]++
		}
		bodies[o.key] = append(bodies[o.key], o.body)
	}
	for key, bs := range bodies {
		if applied[key] != 1 {
			t.Errorf("key %s applied %d times", key, applied[key])
		}
		for _, b := range bs[1:] {
			if b != bs[0] {
				t.Errorf("key %s: answers differ: %s vs %s", key, bs[0], b)
			}
		}
	}
	var keys int
	if err := stores[0].db.QueryRow("SELECT COUNT(*) FROM " + idempotency.Table).Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if want := len(bodies); keys != want || total != 2*writers*perWriter {
		t.Errorf("%d keys stored, want %d (%d writes)", keys, want, total)
	}
}

func TestAverage(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "ratings.db"))
	ctx := context.Background()
	empty, err := st.average(ctx, 9)
	if err != nil || empty.Count != 0 || empty.Average != nil {
		t.Fatalf("no ratings: %+v, %v", empty, err)
	}
	for i, score := range []int{5, 4, 4} {
		if _, err := st.put(ctx, nil, Rating{Profile: fmt.Sprint("p", i), Title: 9, Score: score}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.average(ctx, 9)
	if err != nil || got.Count != 3 || got.Average == nil || *got.Average != 4.33 {
		t.Errorf("average = %+v, %v; want 4.33 over 3", got, err)
	}
}
