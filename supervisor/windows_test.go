package supervisor

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name   string
		bounds []float64
		counts []float64
		q      float64
		want   float64
	}{
		{"empty", []float64{0.1, inf}, []float64{0, 0}, 0.5, math.NaN()},
		{"first bucket interpolates from 0", []float64{0.1, 0.2, inf}, []float64{10, 10, 10}, 0.5, 0.05},
		{"middle bucket", []float64{0.1, 0.2, inf}, []float64{0, 10, 10}, 0.5, 0.15},
		{"p99 across buckets", []float64{0.01, 0.1, 1, inf}, []float64{90, 99, 100, 100}, 0.99, 0.1},
		{"+Inf bucket gives the highest bound", []float64{0.1, 0.2, inf}, []float64{0, 0, 10}, 0.5, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := histogram{bounds: tc.bounds, counts: tc.counts}.quantile(tc.q)
			if !(math.IsNaN(got) && math.IsNaN(tc.want)) && math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// fakeDeps is a client's dependency state a test can change.
type fakeDeps struct {
	mu   sync.Mutex
	deps []client.DependencyStats
}

func (f *fakeDeps) Dependencies() []client.DependencyStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.DependencyStats(nil), f.deps...)
}

func (f *fakeDeps) set(d []client.DependencyStats) {
	f.mu.Lock()
	f.deps = d
	f.mu.Unlock()
}

// fakeInstance serves the real telemetry of one instance: its handler's
// RED metrics (driven by serve) and client metrics from deps.
type fakeInstance struct {
	m    *telemetry.Metrics
	h    http.Handler
	deps *fakeDeps
	srv  *httptest.Server
}

func newFakeInstance(t *testing.T, service, id string) *fakeInstance {
	f := &fakeInstance{m: telemetry.New(service, id), deps: &fakeDeps{}}
	f.m.AddDependencies(f.deps)
	f.h = f.m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	f.srv = httptest.NewServer(f.m.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// serve runs ok good and bad failing requests through the handler.
func (f *fakeInstance) serve(ok, bad int) {
	for range ok {
		f.h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	for range bad {
		f.h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/?fail=1", nil))
	}
}

func (f *fakeInstance) scrape(t *testing.T, st InstanceStatus) scraped {
	t.Helper()
	s := scrapeOne(context.Background(), f.srv.Client(), f.srv.URL+"/metrics")
	if s.err != "" {
		t.Fatal(s.err)
	}
	return scraped{st: st, s: &s}
}

// TestWindowsFromRealMetrics scrapes the telemetry package's real
// exposition of two instances over three rounds and checks every figure
// the dashboard shows, and the breaker events.
func TestWindowsFromRealMetrics(t *testing.T) {
	api := newFakeInstance(t, "api", "api-1-aaaa")
	cat := newFakeInstance(t, "catalog", "catalog-1-cccc")
	// catalog's admission control: at its limit, a queue, overloaded.
	cat.m.AddLimiter(telemetry.LimiterSourceFunc(func() resilience.LimiterStats {
		return resilience.LimiterStats{Limit: 4, InFlight: 4, Queued: 7, Overloaded: true}
	}))
	// Running for a while when the window begins: the first scrape is a
	// baseline.
	apiSt := InstanceStatus{Service: "api", Index: 1, ID: "api-1-aaaa", State: StateServing, Uptime: time.Minute}
	catSt := InstanceStatus{Service: "catalog", Index: 1, ID: "catalog-1-cccc", State: StateServing, Uptime: time.Minute}
	hosts := func(breaker string, ejections int64) []balance.HostStats {
		return []balance.HostStats{{ID: "catalog-1-cccc", EWMA: 20 * time.Millisecond, InFlight: 2, Breaker: breaker, Ejected: breaker == "open", Ejections: ejections}}
	}
	w := newWindows()
	services := []string{"api", "catalog"}
	t0 := time.Now()

	// Round 1: the baseline.
	api.deps.set([]client.DependencyStats{{Service: "catalog", Calls: 100, Failures: 0, Retries: 1, MaxInFlight: 64, Hosts: hosts("closed", 0)}})
	if ev := w.round(t0, services, []scraped{api.scrape(t, apiSt), cat.scrape(t, catSt)}, nil); len(ev) != 0 {
		t.Errorf("events from the first round: %+v", ev)
	}

	// Round 2, 2 s later: 40 requests to api (10 fail), catalog called 20
	// times (5 failures, 4 retries, 2 hedges), its breaker opens.
	api.serve(30, 10)
	cat.serve(20, 0)
	api.deps.set([]client.DependencyStats{{Service: "catalog", Calls: 120, Failures: 5, Retries: 5, Hedges: 2, HedgeWins: 1,
		ThrottleRate: 0.25, Throttled: 4, BudgetLeft: 3, MaxInFlight: 64, Hosts: hosts("open", 1)}})
	ev := w.round(t0.Add(2*time.Second), services, []scraped{api.scrape(t, apiSt), cat.scrape(t, catSt)},
		map[[2]string]bool{{"gateway", "api"}: true})
	if len(ev) != 1 || ev[0].Kind != EventBreaker || ev[0].Instance != "catalog/1" || !strings.Contains(ev[0].Message, "api/1") {
		t.Errorf("events = %+v, want one breaker open for catalog/1 at api/1", ev)
	}
	// Round 1 had no previous sample: the window holds a 0-request delta
	// (2 s) and this one (2 s): 40 requests over 4 s.
	ar := w.services["api"]
	if !near(ar.Rate, 10) || !near(ar.ErrorRatio, 0.25) {
		t.Errorf("api rates = %+v, want 10/s, 25%% errors", ar)
	}
	if p50 := float64(ar.P50); math.IsNaN(p50) || p50 <= 0 || p50 > 0.0005 {
		t.Errorf("api p50 = %v, want within the first bucket (<= 0.5 ms)", p50)
	}
	im := w.instances["api/1"]
	if im == nil || !near(im.Retries, 1) || !near(im.Hedges, 0.5) || !near(im.Throttled, 1) || !near(im.ThrottleRate, 0.25) {
		t.Errorf("api/1 metrics = %+v", im)
	}
	cm := w.instances["catalog/1"]
	if cm == nil || cm.Breaker != "open" || !cm.Ejected || !near(cm.EWMA, 0.02) || !near(cm.CallerInFlight, 2) {
		t.Errorf("catalog/1 as callers see it = %+v", cm)
	}
	if cm == nil || !near(cm.Limit, 4) || !near(cm.InFlight, 4) || !near(cm.Queued, 7) || !cm.Overloaded {
		t.Errorf("catalog/1's admission control = %+v, want limit 4, 4 in flight, 7 queued, overloaded", cm)
	}
	if im == nil || !math.IsNaN(float64(im.Limit)) || im.Queued != 0 || im.Overloaded {
		t.Errorf("api/1, with no admission control, = %+v, want no limit, no queue", im)
	}
	if h := w.history["api"]; len(h.Rate) != 2 {
		t.Errorf("api history has %d points, want 2", len(h.Rate))
	}
	var edge, traced *Edge
	for i := range w.edges {
		switch w.edges[i].From + ">" + w.edges[i].To {
		case "api>catalog":
			edge = &w.edges[i]
		case "gateway>api":
			traced = &w.edges[i]
		}
	}
	if edge == nil || !near(edge.Rate, 5) || !near(edge.ErrorRatio, 0.25) || edge.Open != 1 || !near(edge.BudgetLeft, 3) || !edge.Metrics {
		t.Errorf("api→catalog edge = %+v", edge)
	}
	if traced == nil || !traced.Traced || traced.Metrics {
		t.Errorf("gateway→api edge from traces = %+v", traced)
	}

	// Round 3: api restarted (new ID, counters from zero), the breaker
	// closed again.
	api2 := newFakeInstance(t, "api", "api-1-dddd")
	api2.serve(4, 0)
	api2.deps.set([]client.DependencyStats{{Service: "catalog", Calls: 3, Hosts: hosts("closed", 1)}})
	apiSt.ID, apiSt.Uptime = "api-1-dddd", time.Second
	ev = w.round(t0.Add(4*time.Second), services, []scraped{api2.scrape(t, apiSt), cat.scrape(t, catSt)}, nil)
	if len(ev) != 1 || !strings.Contains(ev[0].Message, "back in rotation") {
		t.Errorf("events = %+v, want the breaker closed", ev)
	}
	// 0 + 40 + 4 requests over 6 s, none negative from the reset.
	if r := w.services["api"].Rate; !near(r, 44.0/6) {
		t.Errorf("api rate after restart = %v, want %v", r, 44.0/6)
	}
}

func near(v num, want float64) bool {
	return math.Abs(float64(v)-want) < 1e-6*math.Max(1, math.Abs(want))
}

// TestWindowsCommandService: a program without metrics gets its rate from
// its callers.
func TestWindowsCommandService(t *testing.T) {
	gw := newFakeInstance(t, "gateway", "gateway-1-aaaa")
	st := InstanceStatus{Service: "gateway", Index: 1, ID: "gateway-1-aaaa", State: StateServing, Uptime: time.Minute}
	web := scraped{st: InstanceStatus{Service: "web", Index: 1, ID: "web-1-bbbb", State: StateServing}}
	w := newWindows()
	t0 := time.Now()
	gw.deps.set([]client.DependencyStats{{Service: "web", Calls: 10}})
	w.round(t0, []string{"gateway", "web"}, []scraped{gw.scrape(t, st), web}, nil)
	gw.deps.set([]client.DependencyStats{{Service: "web", Calls: 30, Failures: 2}})
	w.round(t0.Add(2*time.Second), []string{"gateway", "web"}, []scraped{gw.scrape(t, st), web}, nil)
	r := w.services["web"]
	if !near(r.Rate, 5) || !near(r.ErrorRatio, 0.1) || !math.IsNaN(float64(r.P50)) {
		t.Errorf("web rates = %+v, want 5/s (20 calls over 4 s), 10%% errors, no latency", r)
	}
	if w.instances["web/1"] != nil {
		t.Error("metrics for an instance that has none")
	}
}

// TestDecodeTextAndProtoAgree: the protobuf path, which skips the families
// the dashboard does not show, reads what expfmt's text decoder reads.
func TestDecodeTextAndProtoAgree(t *testing.T) {
	f := newFakeInstance(t, "api", "api-1-aaaa")
	f.deps.set([]client.DependencyStats{{Service: "catalog", Calls: 9, Failures: 2, Hedges: 1,
		Hosts: []balance.HostStats{{ID: "catalog-1-cccc", EWMA: time.Millisecond, Breaker: "half_open"}}}})
	f.serve(5, 2)
	pb := scrapeOne(context.Background(), f.srv.Client(), f.srv.URL+"/metrics")
	resp, err := f.srv.Client().Get(f.srv.URL + "/metrics") // no Accept: the text format
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var text sample
	if err := text.decode(resp.Body, expfmt.ResponseFormat(resp.Header)); err != nil {
		t.Fatal(err)
	}
	if pb.err != "" || text.requests != 7 || pb.requests != 7 || text.errors != 2 || pb.errors != 2 ||
		fmt.Sprint(text.latency) != fmt.Sprint(pb.latency) || text.rss == 0 || pb.rss == 0 {
		t.Errorf("proto %+v\ntext %+v", pb, text)
	}
	for _, s := range []sample{pb, text} {
		d := s.deps["catalog"]
		if d == nil || d.calls != 9 || d.failures != 2 || d.hedges != 1 || d.hosts["catalog-1-cccc"].breaker != "half_open" {
			t.Errorf("catalog dependency %+v", d)
		}
	}
}
