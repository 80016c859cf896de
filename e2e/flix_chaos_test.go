package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the services' stores after the run
)

// recommendationsDown scales recommendations to zero: the home page still
// answers 200 within its deadline, its recommendations row filled with
// popular titles and marked degraded.
func recommendationsDown(t *testing.T, sys *system, fl *edge) {
	token, err := fl.signIn(2, 5*time.Second)
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
		a, err := fl.do(request{method: "GET", path: "/home", token: token}, 5*time.Second)
		took := time.Since(start)
		if err != nil || a.status != 200 {
			t.Fatalf("GET /home with recommendations down: %v %d %s", err, a.status, a.body)
		}
		var home homePage
		if err := a.decode(&home); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(home.Degraded, "recommendations") || len(home.Rows["recommendations"]) == 0 {
			t.Fatalf("home page with recommendations down: want the row degraded and filled with popular titles: %s", a.body)
		}
		// The page's own deadline is 1s; the margin is for a busy machine.
		if took > 2*time.Second {
			t.Errorf("GET /home took %v with recommendations down", took)
		}
		t.Logf("home page without recommendations: %v, degraded %v", took.Round(time.Millisecond), home.Degraded)
	}
}

// Chaos run parameters: the issue asks for ≥ 60 s at ≥ 50 journeys/s with
// a random instance SIGKILLed every 2 s.
const (
	chaosFor      = 60 * time.Second
	chaosRate     = 50 // journeys started per second
	chaosKillEach = 2 * time.Second
)

// ack is a write flix acknowledged during the chaos run.
type ack struct {
	profile, session string
	title, score     int
	position         int
}

type chaosCounts struct {
	journeys, completed          atomic.Int64
	readsFailed, signinsFailed   atomic.Int64
	writesFailed, sessionsFailed atomic.Int64
	mu                           sync.Mutex
	progress, ratings            []ack
	firstFailures                []string
}

func (c *chaosCounts) fail(counter *atomic.Int64, what string, err error, a answer) {
	counter.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.firstFailures) < 10 {
		c.firstFailures = append(c.firstFailures, fmt.Sprintf("%s: %v %d %s", what, err, a.status, a.body))
	}
}

// chaos runs journeys while instances are killed, then checks that nothing
// was lost: no read failed, every acknowledged write is stored exactly once,
// and every event reached every subscriber exactly once.
func chaos(t *testing.T, sys *system, fl *edge) {
	var c chaosCounts
	stop := make(chan struct{})
	var kills []string
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		tick := time.NewTicker(chaosKillEach)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if k := killRandom(sys); k != "" {
				kills = append(kills, k)
			}
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; time.Since(start) < chaosFor; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / chaosRate)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.journeys.Add(1)
			if chaosJourney(fl, i, &c) {
				c.completed.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-killerDone

	t.Logf("chaos: %d journeys in %v (%.1f/s started, %.1f/s completed), %d instances killed: %s",
		c.journeys.Load(), elapsed.Round(time.Second), float64(c.journeys.Load())/elapsed.Seconds(),
		float64(c.completed.Load())/elapsed.Seconds(), len(kills), strings.Join(kills, " "))
	t.Logf("chaos: failed reads %d, failed sign-ins %d, failed session starts %d, unacknowledged writes %d; acknowledged: %d progress, %d ratings; requests sent again to the other gateway: %d",
		c.readsFailed.Load(), c.signinsFailed.Load(), c.sessionsFailed.Load(), c.writesFailed.Load(),
		len(c.progress), len(c.ratings), fl.retries.Load())
	for _, f := range c.firstFailures {
		t.Logf("  %s", f)
	}
	if n := c.readsFailed.Load(); n > 0 {
		t.Errorf("%d reads failed", n)
	}
	if rate := float64(c.completed.Load()) / elapsed.Seconds(); rate < chaosRate*0.9 {
		t.Errorf("%.1f journeys/s completed, want ≥ %d", rate, chaosRate)
	}

	data := filepath.Join(filepath.Dir(sys.manifest), ".shoal", "data")
	checkNothingLost(t, data, &c)
}

// chaosJourney is journey i of the chaos run; it reports whether every step
// succeeded. Reads and keyed writes go to the other gateway when one is
// unreachable; a session start is sent again too (an unused session is
// harmless).
func chaosJourney(fl *edge, i int, c *chaosCounts) bool {
	const d = 5 * time.Second
	n := i%500 + 1
	_, profile := profileOf(n)
	token, err := fl.signIn(n, d)
	if err != nil {
		c.fail(&c.signinsFailed, "sign-in", err, answer{})
		return false
	}
	a, err := fl.do(request{method: "GET", path: "/home", token: token, retry: true}, d)
	if err != nil || a.status != 200 {
		c.fail(&c.readsFailed, "GET /home", err, a)
		return false
	}
	// Distinct (profile, title) per journey: the rating check is exact.
	tid := 1 + ((i/500)*97+(i%500)*13)%2400
	a, err = fl.do(request{method: "POST", path: "/playback/sessions", token: token, retry: true, body: map[string]any{"title": tid}}, d)
	var session struct{ ID string }
	if err != nil || a.status != 201 || a.decode(&session) != nil {
		if a.status == 403 { // a kids profile and an adult title: not a failure
			return true
		}
		c.fail(&c.sessionsFailed, "POST /playback/sessions", err, a)
		return false
	}
	pos := 60 + i
	a, err = fl.do(request{method: "POST", path: "/playback/sessions/" + session.ID + "/progress", token: token, key: newKey(), retry: true,
		body: map[string]any{"position_s": pos, "duration_s": 7200}}, d)
	if err != nil || a.status != 200 {
		c.fail(&c.writesFailed, "POST progress", err, a)
		return false
	}
	c.mu.Lock()
	c.progress = append(c.progress, ack{profile: profile, session: session.ID, title: tid, position: pos})
	c.mu.Unlock()
	score := 1 + i%5
	a, err = fl.do(request{method: "PUT", path: fmt.Sprintf("/ratings/%s/%d", profile, tid), token: token, key: newKey(), retry: true,
		body: map[string]int{"score": score}}, d)
	if err != nil || a.status/100 != 2 {
		c.fail(&c.writesFailed, "PUT rating", err, a)
		return false
	}
	c.mu.Lock()
	c.ratings = append(c.ratings, ack{profile: profile, title: tid, score: score})
	c.mu.Unlock()
	return true
}

// killRandom SIGKILLs a random serving instance of a random service and
// returns its name, or "" if it could not.
func killRandom(sys *system) string {
	out, err := sys.shoalQuiet("ps", "-o", "json")
	var list []psEntry
	if err != nil || json.Unmarshal([]byte(out), &list) != nil {
		return ""
	}
	bySvc := map[string][]psEntry{}
	var names []string
	for _, e := range list {
		if e.State != "serving" {
			continue
		}
		if _, ok := bySvc[e.Service]; !ok {
			names = append(names, e.Service)
		}
		bySvc[e.Service] = append(bySvc[e.Service], e)
	}
	if len(names) == 0 {
		return ""
	}
	svc := names[rand.IntN(len(names))]
	e := bySvc[svc][rand.IntN(len(bySvc[svc]))]
	name := fmt.Sprintf("%s/%d", e.Service, e.Index)
	if _, err := sys.shoalQuiet("kill", name, "--signal", "KILL"); err != nil {
		return ""
	}
	return name
}

// checkNothingLost reads the services' stores once every outbox is empty.
func checkNothingLost(t *testing.T, dataDir string, c *chaosCounts) {
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
	for _, a := range c.progress {
		if n := found[sp{a.session, a.position}]; n != 1 {
			badProgress++
			if badProgress <= 5 {
				t.Errorf("acknowledged progress %s@%d of %s is stored %d times", a.session, a.position, a.profile, n)
			}
		}
	}
	// Every acknowledged rating is stored with its score.
	ratings := open("ratings")
	badRatings := 0
	for _, a := range c.ratings {
		var score, n int
		err := ratings.QueryRow(`SELECT count(*), coalesce(max(score), 0) FROM ratings WHERE profile = $1 AND title = $2`, a.profile, a.title).Scan(&n, &score)
		if err != nil || n != 1 || score != a.score {
			badRatings++
			if badRatings <= 5 {
				t.Errorf("acknowledged rating %s/%d=%d: stored %d times with score %d (%v)", a.profile, a.title, a.score, n, score, err)
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
	t.Logf("acknowledged writes: %d progress (%d not stored exactly once), %d ratings (%d not stored)", len(c.progress), badProgress, len(c.ratings), badRatings)
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
