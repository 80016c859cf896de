package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/examples/flix/internal/flixtest"
	"github.com/shoal-dev/shoal/idempotency"
	"github.com/shoal-dev/shoal/identity"
	"github.com/shoal-dev/shoal/store"
)

func openTestStore(t *testing.T, path string) *ratingsStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := openPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.db.Close() })
	return st
}

func openPath(ctx context.Context, path string) (*ratingsStore, error) {
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return nil, err
	}
	st, err := openRatings(ctx, db, idempotency.Config{})
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

func checkSchema(t *testing.T, st *ratingsStore) {
	t.Helper()
	var version int
	if err := st.db.QueryRow(`SELECT version FROM ` + store.MigrationsTable + ` WHERE name = 'ratings'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) {
		t.Errorf("ratings at version %d, want %d", version, len(migrations))
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
	want := []string{"ratings", "ratings_dataset", idempotency.Table, store.MigrationsTable}
	slices.Sort(want)
	if !slices.Equal(tables, want) {
		t.Errorf("tables %q, want %q", tables, want)
	}
}

// Three instances of the service start at once on a new file: each must
// open it, and the schema must end up applied exactly once.
func TestMigrationsConcurrent(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "ratings.db")
		start := make(chan struct{})
		stores := make([]*ratingsStore, 3)
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i := range stores {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				stores[i], errs[i] = openPath(ctx, path)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: instance %d: %v", round, i, err)
			}
			defer stores[i].db.Close()
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
// file locks, not the in-process ones. Each also writes the dataset (a part
// of it): exactly one of them does.
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
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperOpenAndWrite$", "-test.count=1", "-test.v")
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
	want := helperDataset + 3
	if err := st.db.QueryRow("SELECT COUNT(*) FROM ratings").Scan(&n); err != nil || n != want {
		t.Errorf("%d ratings (%v), want the dataset and one per process, %d", n, err, want)
	}
	writers := 0
	for _, out := range outs {
		writers += strings.Count(string(out), "dataset written")
	}
	if writers != 1 {
		t.Errorf("%d processes wrote the dataset, want exactly one:\n%s", writers, bytes.Join(outs, []byte("\n")))
	}
}

// helperDataset is how much of the dataset TestHelperOpenAndWrite writes:
// enough to take a while, little enough for the race detector.
const helperDataset = 2000

// TestHelperOpenAndWrite is the child of TestMigrationsInThreeProcesses.
func TestHelperOpenAndWrite(t *testing.T) {
	path := os.Getenv("RATINGS_HELPER_DB")
	if path == "" {
		t.Skip("run by TestMigrationsInThreeProcesses")
	}
	n := os.Getenv("RATINGS_HELPER_N")
	st := openTestStore(t, path)
	generated, err := st.ensureDataset(context.Background(), generate(datasetSeed)[:helperDataset])
	if err != nil {
		t.Fatal(err)
	}
	if generated {
		fmt.Println("dataset written")
	}
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
	var stores []*ratingsStore
	for range 2 {
		st := openTestStore(t, path)
		srv := flixtest.Serve(t, st.routes)
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
	tokens := make([]string, writers) // writer w writes for profile p<w>
	for w := range tokens {
		tokens[w] = flixtest.Token(t, fmt.Sprintf("p%d", w))
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
					req.Header.Set(identity.UserTokenHeader, tokens[w])
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

// A ratings.db written by a build from before the SDK's store package
// (schema version in PRAGMA user_version, times as RFC 3339 text, the old
// keys table) opens, keeps its ratings, and takes new ones.
func TestOldDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ratings.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`PRAGMA journal_mode=WAL`,
		`CREATE TABLE ratings (
			profile    TEXT    NOT NULL,
			title      INTEGER NOT NULL,
			score      INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
			updated_at TEXT    NOT NULL,
			PRIMARY KEY (profile, title)
		) WITHOUT ROWID`,
		`CREATE INDEX ratings_by_title ON ratings (title, score)`,
		`CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, body BLOB)`,
		`INSERT INTO ratings VALUES ('alice', 7, 4, '2025-03-04T05:06:07.123456789Z')`,
		`PRAGMA user_version = 2`,
	} {
		if _, err := old.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	old.Close()

	st := openTestStore(t, path)
	checkSchema(t, st)
	r, ok, err := st.get(context.Background(), "alice", 7)
	want := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	if err != nil || !ok || r.Score != 4 || !r.UpdatedAt.Equal(want) {
		t.Fatalf("old rating: %+v %v %v; want score 4 at %v", r, ok, err, want)
	}
	if _, err := st.put(context.Background(), nil, Rating{Profile: "alice", Title: 8, Score: 2}); err != nil {
		t.Fatal(err)
	}
	rs, err := st.ofProfile(context.Background(), "alice")
	if err != nil || len(rs) != 2 || rs[0].Title != 8 || rs[1].Title != 7 {
		t.Errorf("ratings of alice: %+v, %v; want 8 then 7", rs, err)
	}
}

func TestDataset(t *testing.T) {
	start := time.Now()
	rs := generate(datasetSeed)
	genTook := time.Since(start)
	if !slices.Equal(rs, generate(datasetSeed)) {
		t.Fatal("two generations differ")
	}
	if len(rs) < 50000 {
		t.Fatalf("%d ratings, want at least 50,000", len(rs))
	}
	perProfile := map[string]map[int64]bool{}
	perTitle := map[int64]int{}
	for _, r := range rs {
		if perProfile[r.Profile] == nil {
			perProfile[r.Profile] = map[int64]bool{}
		}
		if perProfile[r.Profile][r.Title] {
			t.Fatalf("%s rates %d twice", r.Profile, r.Title)
		}
		perProfile[r.Profile][r.Title] = true
		perTitle[r.Title]++
		if r.Score < 1 || r.Score > 5 || r.Title < 1 || r.Title > datasetTitles {
			t.Fatalf("bad rating %+v", r)
		}
	}
	if len(perProfile) != datasetProfiles || len(perProfile["p0001"]) != datasetPerProfile || len(perProfile["p0500"]) != datasetPerProfile {
		t.Errorf("%d profiles, p0001 rates %d", len(perProfile), len(perProfile["p0001"]))
	}
	// Every title has ratings (the api shows an average for any title),
	// and the journey test rates title 1234 as p0001: it must be new to
	// p0001 for the count to move.
	if len(perTitle) != datasetTitles {
		t.Errorf("%d titles rated, want all %d", len(perTitle), datasetTitles)
	}
	if perProfile["p0001"][1234] {
		t.Errorf("p0001 rates title 1234 in the dataset")
	}
	counts := slices.Sorted(maps.Values(perTitle))
	if most, median := counts[len(counts)-1], counts[len(counts)/2]; most < 10*median {
		t.Errorf("the most rated title has %d ratings, the median %d: want a clear popularity skew", most, median)
	}

	st := openTestStore(t, filepath.Join(t.TempDir(), "ratings.db"))
	if raceEnabled {
		rs = rs[:2000] // the first 20 profiles'
	}
	start = time.Now()
	generated, err := st.ensureDataset(context.Background(), rs)
	if err != nil || !generated {
		t.Fatalf("ensureDataset: %v, %v", generated, err)
	}
	t.Logf("dataset: %d ratings generated in %v, written in %v", len(rs), genTook, time.Since(start))
	if took := time.Since(start) + genTook; took > 5*time.Second && !raceEnabled {
		t.Errorf("dataset took %v, want well under 5s", took)
	}
	if generated, err := st.ensureDataset(context.Background(), rs); err != nil || generated {
		t.Errorf("second ensureDataset: %v, %v; want nothing written", generated, err)
	}
	top, err := st.top(context.Background())
	if err != nil || len(top) == 0 || len(top) != maxTop && !raceEnabled {
		t.Fatalf("top: %d titles, %v", len(top), err)
	}
	if top[0].Count < len(rs)/1000 || top[0].Average < 4 {
		t.Errorf("the most popular title: %+v; want many high ratings", top[0])
	}
}

// GET /top ranks by Bayesian average: a title with a few fives does not
// beat one with many ratings of 4.5 on average, and titles under minVotes are left out.
func TestTop(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "ratings.db"))
	var rs []Rating
	add := func(title int64, n int, scores ...int) {
		for i := range n {
			rs = append(rs, Rating{Profile: fmt.Sprintf("t%d-%d", title, i), Title: title, Score: scores[i%len(scores)], UpdatedAt: time.UnixMilli(1).UTC()})
		}
	}
	add(1, 12, 5)     // a few fives
	add(2, 200, 4, 5) // many, 4.5 on average
	add(3, 9, 5)      // too few
	add(4, 50, 2)
	if _, err := st.ensureDataset(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	srv := flixtest.Serve(t, st.routes)
	r := do(t, srv, "GET", "/top?limit=2", "", "")
	if want := `{"titles":[{"title":2,"average":4.5,"count":200},{"title":1,"average":5,"count":12}]}`; r.Status != 200 || strings.TrimSpace(r.Body) != want {
		t.Errorf("GET /top?limit=2: %d %s; want %s", r.Status, r.Body, want)
	}
	r = do(t, srv, "GET", "/top", "", "")
	if r.Status != 200 || !strings.Contains(r.Body, `{"title":4,`) || strings.Contains(r.Body, `{"title":3,`) {
		t.Errorf("GET /top: %d %s; want titles 2, 1, 4", r.Status, r.Body)
	}
	for _, bad := range []string{"0", "101", "x"} {
		if r := do(t, srv, "GET", "/top?limit="+bad, "", ""); r.Status != 400 || !strings.Contains(r.Body, "limit") {
			t.Errorf("limit=%s: %d %s", bad, r.Status, r.Body)
		}
	}
}
