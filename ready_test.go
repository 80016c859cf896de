package shoal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
)

// The services waited for are those named in Calls and those a policy is
// set for: a manifest's dependencies: reach the program as
// SHOAL_DEPENDENCIES.
func TestDependencies(t *testing.T) {
	c := Config{Name: "api", Calls: []string{"ratings", "catalog"},
		Client: client.Config{Dependencies: map[string]client.Config{"history": {MaxAttempts: 2}}}}
	env := map[string]string{EnvDependencies: `{"ratings": {"max_in_flight": 128}, "profiles": {}}`}
	if err := c.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got, want := dependencies(c), []string{"catalog", "history", "profiles", "ratings"}; !cmp.Equal(got, want) {
		t.Fatalf("dependencies = %v, want %v", got, want)
	}
	if got := dependencies(Config{Name: "alone"}); len(got) != 0 {
		t.Fatalf("no dependencies declared: %v", got)
	}
}

// The gate opens when every dependency has a serving instance, or when the
// wait is over; whichever comes first, it is logged.
func TestAwaitDependencies(t *testing.T) {
	serving := func(service, id string) discovery.Instance {
		return discovery.Instance{ID: id, Service: service, Addr: "127.0.0.1:1", State: discovery.StateServing}
	}
	tests := []struct {
		name     string
		arrive   []discovery.Instance // in order, a second apart
		wantAt   time.Duration        // when the gate opens
		wantLog  string
		wantMiss []string
	}{
		{"all arrive", []discovery.Instance{
			serving("catalog", "c1"),
			{ID: "r1", Service: "ratings", Addr: "127.0.0.1:2", State: discovery.StateDraining}, // not yet
			serving("ratings", "r2"),
		}, 3 * time.Second, "INFO ready: every service called is in discovery service=api instance=api-1 calls=[catalog ratings] waited=3s", nil},
		{"one never does", []discovery.Instance{serving("catalog", "c1")}, 10 * time.Second,
			"WARN ready without services still missing from discovery; calls to them fail until they appear service=api instance=api-1 missing=[ratings] waited=10s", []string{"ratings"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logs := newLogRecorder()
				svc, err := New(Config{Name: "api", ID: "api-1", Calls: []string{"ratings", "catalog"}, DependencyWait: 10 * time.Second,
					Logger: logs.logger()}, &Router{})
				if err != nil {
					t.Fatal(err)
				}
				cat := discovery.NewCatalog()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				begin := time.Now()
				opened := make(chan time.Duration, 1)
				go func() {
					svc.awaitDependencies(ctx, cat)
					opened <- time.Since(begin)
				}()
				for _, in := range tt.arrive {
					time.Sleep(time.Second) // fake time: the instances arrive a second apart
					synctest.Wait()
					if svc.depsFound.Load() {
						t.Fatalf("open before %s arrived", in.ID)
					}
					cat.Upsert(in)
				}
				if at := <-opened; at != tt.wantAt || !svc.depsFound.Load() {
					t.Fatalf("opened after %v (found %v), want %v", at, svc.depsFound.Load(), tt.wantAt)
				}
				if got := missing(cat.Snapshot(), svc.deps); !cmp.Equal(got, tt.wantMiss) {
					t.Errorf("missing %v, want %v", got, tt.wantMiss)
				}
				if out := logs.text(); out != tt.wantLog {
					t.Errorf("log:\n%s\nwant:\n%s", out, tt.wantLog)
				}
			})
		})
	}
}

// readyz returns the status and body of GET /readyz.
func readyz(t *testing.T, svc *Service) (int, Readiness) {
	t.Helper()
	w := httptest.NewRecorder()
	svc.admin.ServeHTTP(w, httptest.NewRequest("GET", PathReady, nil))
	var rd Readiness
	if err := json.Unmarshal(w.Body.Bytes(), &rd); err != nil {
		t.Fatalf("GET /readyz: %d %s: %v", w.Code, w.Body, err)
	}
	return w.Code, rd
}

// Over real gossip: an instance is not ready until the service it calls
// joins, and stays ready when that service leaves.
func TestReadyWaitsForDependencies(t *testing.T) {
	verifyNoLeaks(t)
	api, _, _ := start(t, Config{Name: "api", Calls: []string{"ratings"}}, http.NotFoundHandler())
	if code, rd := readyz(t, api); code != 503 || rd.Status != "starting" || !cmp.Equal(rd.Missing, []string{"ratings"}) {
		t.Fatalf("before ratings: %d %+v, want 503 starting, missing ratings", code, rd)
	}
	if info := api.Info(); info.State != "starting" || !cmp.Equal(info.Calls, []string{"ratings"}) {
		t.Fatalf("infoz before ratings: state %q, calls %v", info.State, info.Calls)
	}
	_, stopRatings, ratingsDone := start(t, Config{Name: "ratings", Seeds: []string{api.member.Load().GossipAddr()}}, http.NotFoundHandler())
	waitUntil(t, "api to report ready", func() bool { code, _ := readyz(t, api); return code == 200 })
	if _, rd := readyz(t, api); rd.Status != "ready" || len(rd.Missing) != 0 {
		t.Fatalf("after ratings joined: %+v", rd)
	}

	stopRatings()
	<-ratingsDone
	waitUntil(t, "ratings to leave api's view", func() bool { return len(api.Instances("ratings")) == 0 })
	if code, rd := readyz(t, api); code != 200 || !cmp.Equal(rd.Missing, []string{"ratings"}) {
		t.Fatalf("after ratings left: %d %+v, want 200 (ready once, ready on) naming ratings missing", code, rd)
	}
	if info := api.Info(); info.State != "serving" || !cmp.Equal(info.Missing, []string{"ratings"}) {
		t.Fatalf("infoz after ratings left: state %q, missing %v", info.State, info.Missing)
	}
}

// A dependency that never comes holds readiness back for DependencyWait
// only, and is shown.
func TestReadyWithoutDependencyAfterWait(t *testing.T) {
	verifyNoLeaks(t)
	svc, _, _ := start(t, Config{Name: "lonely", Calls: []string{"nobody"}, DependencyWait: 300 * time.Millisecond}, http.NotFoundHandler())
	waitUntil(t, "ready after the wait", func() bool { code, _ := readyz(t, svc); return code == 200 })
	if since := time.Since(svc.started); since < 300*time.Millisecond {
		t.Fatalf("ready %v after start, before the 300ms wait", since)
	}
	if _, rd := readyz(t, svc); rd.Status != "ready" || !cmp.Equal(rd.Missing, []string{"nobody"}) {
		t.Fatalf("readyz %+v, want ready with nobody missing", rd)
	}
}
