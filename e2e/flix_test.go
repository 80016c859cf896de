package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/e2e/flixedge"
)

// The flix reference system, started from the shipped shoal.yaml by
// TestUpReferenceSystem and used only through its gateways, the way a
// user's device would.

// adminKey is the development API key of shoal.yaml's flix-admin.
const adminKey = "flix-dev-admin-key"

type title struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Genres   []string `json:"genres"`
	Maturity string   `json:"maturity"`
	Duration int      `json:"duration_s"`
}

type homePage struct {
	Profile  string                       `json:"profile"`
	Rows     map[string][]json.RawMessage `json:"rows"`
	Degraded []string                     `json:"degraded"`
}

// journey is one user's path through flix: sign in, home page, play,
// progress, continue watching, recommendations, rating, search.
func journey(t *testing.T, fl *flixedge.Edge) {
	const d = 5 * time.Second
	token, err := fl.SignIn(1, d)
	if err != nil {
		t.Fatal(err)
	}
	a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/home", Token: token, Retry: true}, d)
	if err != nil || a.Status != 200 {
		t.Fatalf("GET /home: %v %d %s", err, a.Status, a.Body)
	}
	var home homePage
	if err := a.Decode(&home); err != nil {
		t.Fatal(err)
	}
	if home.Profile != "p0001" || len(home.Rows["new"]) == 0 || len(home.Rows["top_rated"]) == 0 {
		t.Fatalf("home page: %s", a.Body)
	}

	// A title nobody has watched in this system yet.
	const tid = 1234
	var ti title
	if a, err = fl.Do(flixedge.Request{Method: "GET", Path: fmt.Sprintf("/catalog/titles/%d", tid), Retry: true}, d); err != nil || a.Decode(&ti) != nil || a.Status != 200 {
		t.Fatalf("GET /catalog/titles/%d: %v %d %s", tid, err, a.Status, a.Body)
	}
	a, err = fl.Do(flixedge.Request{Method: "POST", Path: "/playback/sessions", Token: token, Body: map[string]any{"title": tid}}, d)
	if err != nil || a.Status != 201 {
		t.Fatalf("POST /playback/sessions: %v %d %s", err, a.Status, a.Body)
	}
	var session struct {
		ID          string `json:"id"`
		ManifestURL string `json:"manifest_url"`
	}
	if err := a.Decode(&session); err != nil || session.ID == "" || session.ManifestURL == "" {
		t.Fatalf("session: %s (%v)", a.Body, err)
	}
	a, err = fl.Do(flixedge.Request{Method: "POST", Path: "/playback/sessions/" + session.ID + "/progress", Token: token, Key: flixedge.NewKey(), Retry: true,
		Body: map[string]any{"position_s": 600, "duration_s": max(ti.Duration, 3600)}}, d)
	if err != nil || a.Status != 200 {
		t.Fatalf("POST progress: %v %d %s", err, a.Status, a.Body)
	}

	waitFor(t, 10*time.Second, "continue watching to show the title", func() bool {
		a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/history/p0001/continue", Token: token, Retry: true}, d)
		return err == nil && a.Status == 200 && strings.Contains(string(a.Body), fmt.Sprintf(`"title":%d`, tid))
	})
	waitFor(t, 10*time.Second, "recommendations to reflect what was watched", func() bool {
		a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/recommendations/p0001", Token: token, Retry: true}, d)
		return err == nil && a.Status == 200 && strings.Contains(string(a.Body), ti.Name)
	})

	// Rating the title moves its average.
	avg := func() (float64, int) {
		a, err := fl.Do(flixedge.Request{Method: "GET", Path: fmt.Sprintf("/titles/%d", tid), Retry: true}, d)
		var out struct {
			Rating struct {
				Average *float64 `json:"average"`
				Count   int      `json:"count"`
			} `json:"rating"`
		}
		if err != nil || a.Status != 200 || a.Decode(&out) != nil || out.Rating.Average == nil {
			return -1, -1
		}
		return *out.Rating.Average, out.Rating.Count
	}
	before, n := avg()
	score := 5
	if before > 3 {
		score = 1
	}
	a, err = fl.Do(flixedge.Request{Method: "PUT", Path: fmt.Sprintf("/ratings/p0001/%d", tid), Token: token, Key: flixedge.NewKey(), Retry: true,
		Body: map[string]int{"score": score}}, d)
	if err != nil || a.Status/100 != 2 {
		t.Fatalf("PUT rating: %v %d %s", err, a.Status, a.Body)
	}
	waitFor(t, 10*time.Second, "the title's average to change", func() bool {
		after, m := avg()
		return m == n+1 && after != before
	})

	// A title added to the catalog is found by search.
	word := "Zyx" + flixedge.NewKey()[:8]
	a, err = fl.Do(flixedge.Request{Method: "POST", Path: "/catalog/titles", APIKey: adminKey, Key: flixedge.NewKey(), Retry: true,
		Body: map[string]any{"name": "The " + word + " Expedition", "year": 2026, "genres": []string{"documentary"},
			"kind": "movie", "maturity": "all", "duration_s": 5400}}, d)
	if err != nil || a.Status != 201 {
		t.Fatalf("POST /catalog/titles: %v %d %s", err, a.Status, a.Body)
	}
	waitFor(t, 10*time.Second, "search to find the new title", func() bool {
		a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/search?q=" + word, Retry: true}, d)
		return err == nil && a.Status == 200 && strings.Contains(string(a.Body), word)
	})
	// Without a token, profile routes are closed.
	if a, err := fl.Do(flixedge.Request{Method: "GET", Path: "/home"}, d); err != nil || a.Status != 401 {
		t.Errorf("GET /home without a token: %v %d %s", err, a.Status, a.Body)
	}
}
