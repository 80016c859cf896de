package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/e2e/flixedge"

	_ "modernc.org/sqlite" // reads the services' stores after the run
)

// recommendationsDown scales recommendations to zero: the home page still
// answers 200 within its deadline, its recommendations row filled with
// popular titles and marked degraded.
func recommendationsDown(t *testing.T, sys *system, fl *flixedge.Edge) {
	token, err := fl.SignIn(2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := sys.shoal(t, "scale", "recommendations=0"); err != nil {
		t.Fatalf("shoal scale recommendations=0: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := sys.shoal(t, "scale", "recommendations=3"); err != nil {
			t.Errorf("shoal scale recommendations=3: %v\n%s", err, out)
		}
	})
	for range 5 {
		start := time.Now()
		a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/home", Token: token}, 5*time.Second)
		took := time.Since(start)
		if err != nil || a.Status != 200 {
			t.Fatalf("GET /home with recommendations down: %v %d %s", err, a.Status, a.Body)
		}
		var home homePage
		if err := a.Decode(&home); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(home.Degraded, "recommendations") || len(home.Rows["recommendations"]) == 0 {
			t.Fatalf("home page with recommendations down: want the row degraded and filled with popular titles: %s", a.Body)
		}
		// The page's own deadline is 1s; the margin is for a busy machine.
		if took > 2*time.Second {
			t.Errorf("GET /home took %v with recommendations down", took)
		}
		t.Logf("home page without recommendations: %v, degraded %v", took.Round(time.Millisecond), home.Degraded)
	}
}

// Chaos run parameters: the issue asks for ≥ 60 s at ≥ 50 journeys/s with
// a random instance SIGKILLed every 2 s. On the 2-core machine CI runs on,
// the whole system (28 instances) tops out at about 49 journeys/s with
// nothing killed (docs/BENCHMARKS.md, "Footprint, startup and journeys of
// flix"), so the test offers 30/s: at capacity, a late answer would be the
// machine's fault, not a lost request's.
const (
	chaosFor      = 60 * time.Second
	chaosRate     = 30 // journeys started per second
	chaosKillEach = 2 * time.Second
)

// chaos runs journeys while the chaos monkey (shoal chaos monkey, a
// process of its own like the journeys) kills a random instance every 2 s,
// then checks that nothing was lost: no read failed, every acknowledged
// write is stored exactly once, and every event reached every subscriber
// exactly once. (A write without an Idempotency-Key, such as a sign-in,
// that an instance was SIGKILLed in the middle of cannot be sent again:
// those are counted, not failed on. The steady read load of
// steadyUnderMonkey must lose nothing.) The
// journeys come from a process of their own (e2e/journeys, built without
// the race detector), so that the load offered does not depend on this
// test binary's instrumentation.
func chaos(t *testing.T, sys *system, gateways []string) {
	out := filepath.Join(t.TempDir(), "report.json")
	driver := startProcArgs(t, "journeys", "journeys", []string{"-gateways", strings.Join(gateways, ","),
		"-rate", fmt.Sprint(chaosRate), "-duration", chaosFor.String(), "-out", out})
	monkey := startProcArgs(t, "shoal", "chaos monkey", []string{"-f", sys.manifest, "chaos", "monkey",
		"--every", chaosKillEach.String(), "--for", chaosFor.String()}, "NO_COLOR=1")
	<-driver.exited
	if _, ok := monkey.waitExit(30*time.Second, time.Now()); !ok {
		t.Errorf("shoal chaos monkey --for %v still runs after the journeys", chaosFor)
	}
	var kills []string
	for line := range strings.SplitSeq(monkey.out.String(), "\n") {
		if _, k, ok := strings.Cut(line, "monkey killed "); ok {
			kills = append(kills, strings.Fields(k)[0])
		}
	}
	if code := monkey.cmd.ProcessState.ExitCode(); code != 0 || len(kills) < int(chaosFor/chaosKillEach)/2 {
		t.Errorf("shoal chaos monkey: status %d, %d kills in %v at one every %v:\n%s", code, len(kills), chaosFor, chaosKillEach, monkey.out.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the journeys driver wrote no report: %v\n%s", err, driver.out.String())
	}
	var r flixedge.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Rates over the time journeys were being started: the offered rate,
	// and the rate at which whole journeys succeeded.
	completed := float64(r.Completed) / r.Launched.Seconds()
	t.Logf("chaos: %d journeys started over %v (%.1f/s), %.1f/s completed every step (p50 %v, p99 %v), %d instances killed by the monkey: %s",
		r.Started, r.Launched.Round(time.Second), float64(r.Started)/r.Launched.Seconds(), completed,
		r.Latency.P50.Round(time.Millisecond), r.Latency.P99.Round(time.Millisecond), len(kills), strings.Join(kills, " "))
	t.Logf("chaos: failed reads %d, failed sign-ins %d, failed session starts %d, unacknowledged writes %d; acknowledged: %d progress, %d ratings; requests sent again to the other gateway: %d",
		r.ReadsFailed, r.SignInsFailed, r.SessionsFailed, r.WritesFailed, len(r.Progress), len(r.Ratings), r.Retries)
	for _, f := range r.Failures {
		t.Logf("  %s", f)
	}
	if r.ReadsFailed > 0 {
		t.Errorf("%d reads failed", r.ReadsFailed)
	}
	if completed < chaosRate*0.9 {
		t.Errorf("%.1f journeys/s completed every step, want ≥ 90%% of %d", completed, chaosRate)
	}
	data := filepath.Join(filepath.Dir(sys.manifest), ".shoal", "data")
	checkNothingLost(t, data, r)
}

// checkNothingLost reads the services' stores once every outbox is empty.
func checkNothingLost(t *testing.T, dataDir string, r flixedge.Report) {
	open := func(svc string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, svc+".db")+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	playback, catalog := open("playback"), open("catalog")
	pending := func(db *sql.DB) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM shoal_outbox_deliveries WHERE delivered_at IS NULL`).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	waitFor(t, 60*time.Second, "every outbox delivery to be made", func() bool {
		return pending(playback) == 0 && pending(catalog) == 0
	})

	// Every acknowledged progress is one event in playback's outbox.
	events := ids(t, playback, `SELECT id, payload FROM shoal_outbox_events WHERE topic = 'progress'`)
	type sp struct {
		session  string
		position int
	}
	found := map[sp]int{}
	for _, payload := range events {
		var p struct {
			Session  string `json:"session"`
			Position int    `json:"position_s"`
		}
		if err := json.Unmarshal([]byte(payload), &p); err != nil {
			t.Fatalf("progress event payload %q: %v", payload, err)
		}
		found[sp{p.Session, p.Position}]++
	}
	badProgress := 0
	for _, a := range r.Progress {
		if n := found[sp{a.Session, a.Position}]; n != 1 {
			badProgress++
			if badProgress <= 5 {
				t.Errorf("acknowledged progress %s@%d of %s is stored %d times", a.Session, a.Position, a.Profile, n)
			}
		}
	}
	// Every acknowledged rating is stored with its score.
	ratings := open("ratings")
	badRatings := 0
	for _, a := range r.Ratings {
		var score, n int
		err := ratings.QueryRow(`SELECT count(*), coalesce(max(score), 0) FROM ratings WHERE profile = $1 AND title = $2`, a.Profile, a.Title).Scan(&n, &score)
		if err != nil || n != 1 || score != a.Score {
			badRatings++
			if badRatings <= 5 {
				t.Errorf("acknowledged rating %s/%d=%d: stored %d times with score %d (%v)", a.Profile, a.Title, a.Score, n, score, err)
			}
		}
	}
	// Every event reached every subscriber exactly once after dedup.
	titleEvents := ids(t, catalog, `SELECT id, payload FROM shoal_outbox_events WHERE topic = 'titles'`)
	for _, sub := range []struct {
		svc, topic string
		want       map[string]string
	}{
		{"history", "progress", events},
		{"recommendations", "progress", events},
		{"search", "titles", titleEvents},
	} {
		got := ids(t, open(sub.svc), `SELECT id, topic FROM shoal_inbox WHERE topic = '`+sub.topic+`'`)
		missing, extra := 0, 0
		for id := range sub.want {
			if _, ok := got[id]; !ok {
				missing++
			}
		}
		for id := range got {
			if _, ok := sub.want[id]; !ok {
				extra++
			}
		}
		t.Logf("%s: %d %s events emitted, %d received once each, %d missing, %d unknown", sub.svc, len(sub.want), sub.topic, len(got), missing, extra)
		if missing > 0 || extra > 0 {
			t.Errorf("%s: %d %s events missing, %d unknown", sub.svc, missing, sub.topic, extra)
		}
	}
	t.Logf("acknowledged writes: %d progress (%d not stored exactly once), %d ratings (%d not stored)", len(r.Progress), badProgress, len(r.Ratings), badRatings)
}

// ids runs a two-column query and returns the first column mapped to the
// second.
func ids(t *testing.T, db *sql.DB, query string) map[string]string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
