package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shoal-dev/shoal/chaos"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/discovery"
	"github.com/shoal-dev/shoal/gateway"
	"github.com/shoal-dev/shoal/internal/syncbuf"
	"github.com/shoal-dev/shoal/supervisor"
	"github.com/shoal-dev/shoal/telemetry"
)

// testSystem stands for a running shoal up: a folder with the operator's
// key and the Prometheus targets, one service "svc" that honours faults at
// its hop (and counts its answers in test_requests_total), and a fake
// supervisor whose kills break svc for a moment.
type testSystem struct {
	dir     string
	srv     *httptest.Server
	signer  *chaos.Signer
	mu      sync.Mutex
	actions []supervisor.ChaosAction
	broken  atomic.Int64 // unix nanos until which svc answers 503
}

func newTestSystem(t *testing.T) *testSystem {
	t.Helper()
	s := &testSystem{dir: t.TempDir()}
	key, err := chaos.LoadOrCreateKey(chaos.KeyFile(s.dir))
	if err != nil {
		t.Fatal(err)
	}
	s.signer = chaos.NewSigner(key)
	v, err := chaos.NewVerifier(s.signer.PublicKey(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_requests_total"}, []string{"code"})
	reg.MustRegister(answers)
	answers.WithLabelValues("200")
	answers.WithLabelValues("503") // a series from the start, as it should be
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /signin", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"token": "secret"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		code, body := 200, `{}`
		if time.Now().UnixNano() < s.broken.Load() {
			code = 503
		}
		if set, err := v.Verify(r.Header.Get(chaos.Header)); err == nil {
			p := chaos.Draw(set.Here())
			time.Sleep(p.Delay)
			body = `{"degraded":["x"]}`
			if p.End != nil {
				code = p.End.Status
			}
		}
		if r.URL.Path == "/home" && r.Header.Get("Authorization") != "Bearer secret" {
			code = 401
		}
		answers.WithLabelValues(fmt.Sprint(code)).Inc()
		w.WriteHeader(code)
		io.WriteString(w, body)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.targets(t, s.srv.Listener.Addr().String())
	return s
}

// targets writes shoal up's targets file listing addr as svc/1.
func (s *testSystem) targets(t *testing.T, addr string) {
	t.Helper()
	b, _ := json.Marshal([]target{{Targets: []string{addr}, Labels: map[string]string{"shoal_service": "svc", "shoal_instance": "svc/1"}}})
	p := filepath.Join(s.dir, filepath.FromSlash(supervisor.TargetsFile))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *testSystem) PS(context.Context) ([]supervisor.InstanceStatus, error) {
	return []supervisor.InstanceStatus{
		{Service: "gateway", Index: 1, PID: 1, State: supervisor.StateServing, Addr: s.srv.Listener.Addr().String()},
		{Service: "svc", Index: 1, PID: 2, State: supervisor.StateServing},
		{Service: "svc", Index: 2, PID: 3, State: supervisor.StateServing},
	}, nil
}

func (s *testSystem) Chaos(_ context.Context, a supervisor.ChaosAction) (supervisor.ChaosResult, error) {
	s.mu.Lock()
	s.actions = append(s.actions, a)
	s.mu.Unlock()
	s.broken.Store(time.Now().Add(150 * time.Millisecond).UnixNano())
	return supervisor.ChaosResult{Message: fmt.Sprintf("%s killed %s/%d", a.By, a.Service, a.Index)}, nil
}

func (s *testSystem) run(t *testing.T, yaml string) (*Report, time.Duration) {
	t.Helper()
	e, err := Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	r := &Runner{System: s, Dir: s.dir, Log: &log}
	start := time.Now()
	rep, err := r.Run(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("log:\n%s\n%s", log.String(), table.String())
	return rep, time.Since(start)
}

func check(t *testing.T, rep *Report, name string) CheckResult {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rep.Checks)
	return CheckResult{}
}

const synthetic = `
warmup: 0s
baseline: 2s
traffic:
  synthetic:
    rate: 25
    setup: [{method: POST, path: /signin, extract: {token: token}}]
    requests:
      - {path: '/titles/${1..9}'}
      - {path: /home, headers: {Authorization: 'Bearer ${token}'}}
`

func TestRunHeld(t *testing.T) {
	s := newTestSystem(t)
	rep, _ := s.run(t, synthetic+`
duration: 2s
fault: {request: 'svc:delay=40ms'}
hypothesis:
  - {name: answers, route: GET /titles/, success: {tolerance: 0.01}}
  - {name: home, route: /home, success: {min: 1}}
  - {name: latency, route: /titles/, latency: {quantile: 0.5, tolerance: 1s}}
  - {name: degraded, route: /titles/, match: {body: degraded, min: 0.99}}
  - {name: answers per second, expr: {query: 'sum(rate(test_requests_total))', tolerance: 1000}}
abort:
  - {route: /titles/, success: {tolerance: 0.2}}
`)
	if rep.Verdict != Held || !rep.OK() {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	// The fault took: the experiment's requests are degraded and slower,
	// the control's are not.
	if c := check(t, rep, "degraded"); c.Control != 0 || c.Experiment != 1 {
		t.Errorf("degraded share: control %v, experiment %v", c.Control, c.Experiment)
	}
	if c := check(t, rep, "latency"); c.Difference < 0.03 {
		t.Errorf("median latency: control %v, experiment %v: the delay did not show", c.Control, c.Experiment)
	}
	if c := check(t, rep, "answers per second"); math.IsNaN(float64(c.Control)) || c.Experiment < 20 {
		t.Errorf("answers per second: baseline %v, fault %v (both cohorts at 25/s)", c.Control, c.Experiment)
	}
	if rep.Requests["control"] < 40 || rep.Requests["experiment"] < 40 {
		t.Errorf("requests %v, want about 75 a cohort", rep.Requests)
	}
}

func TestRunAborted(t *testing.T) {
	s := newTestSystem(t)
	rep, took := s.run(t, synthetic+`
duration: 30s
fault: {request: 'svc:error=503'}
hypothesis:
  - {name: answers, route: GET /titles/, success: {tolerance: 0.01}}
abort:
  - {name: still answering, route: /titles/, success: {tolerance: 0.2}}
`)
	if rep.Verdict != Aborted || rep.OK() {
		t.Fatalf("verdict %s, want aborted", rep.Verdict)
	}
	if rep.AbortedAfter > 5*time.Second || took > 15*time.Second {
		t.Errorf("aborted %v after the fault, the run took %v", rep.AbortedAfter, took)
	}
	if c := check(t, rep, "still answering"); !c.Abort || c.Held || c.Experiment > 0.01 {
		t.Errorf("abort row %+v", c)
	}
	if !strings.Contains(rep.Reason, "still answering") {
		t.Errorf("reason %q", rep.Reason)
	}
}

func TestRunFailed(t *testing.T) {
	s := newTestSystem(t)
	rep, _ := s.run(t, synthetic+`
duration: 2s
fault: {request: 'svc:error=500,p=0.5'}
hypothesis:
  - {name: answers, route: GET /titles/, success: {tolerance: 0.01}}
  - {name: nothing here, route: GET /nothing, success: {tolerance: 0.01}}
`)
	if rep.Verdict != Failed {
		t.Fatalf("verdict %s, want failed", rep.Verdict)
	}
	// Half the fault phase's requests fail, but its window's edges may hold
	// requests sent before the fault was on or after it was off (22 of 27
	// answered once on a loaded CI machine): only a clear drop is required.
	if c := check(t, rep, "answers"); c.Held || c.Control != 1 || c.Experiment > 0.9 {
		t.Errorf("answers %+v", c)
	}
	if c := check(t, rep, "nothing here"); c.Held || !strings.Contains(c.Note, "no data") {
		t.Errorf("a check without requests %+v", c)
	}
	var b strings.Builder
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil || back.Verdict != Failed || len(back.Checks) != 2 {
		t.Errorf("JSON %s: %v", b.String(), err)
	}
}

func TestRunInstanceFaults(t *testing.T) {
	s := newTestSystem(t)
	rep, _ := s.run(t, synthetic+`
duration: 2s
fault:
  instances: {every: 400ms, services: [svc]}
hypothesis:
  - {name: answers, route: GET /titles/, success: {min: 0.999}}
  - {name: more than the baseline, expr: {query: 'sum(increase(test_requests_total{code="503"}))', max: 0}}
`)
	if rep.Verdict != Failed {
		t.Fatalf("verdict %s, want failed (a kill breaks svc for a moment)", rep.Verdict)
	}
	s.mu.Lock()
	n := len(s.actions)
	s.mu.Unlock()
	if n < 3 || len(rep.Actions) != n || !strings.Contains(rep.Actions[0], "experiment test killed svc/") {
		t.Errorf("%d actions, report %q", n, rep.Actions)
	}
	if c := check(t, rep, "answers"); c.Control != 1 || c.Experiment == 1 {
		t.Errorf("baseline %v, fault phase %v", c.Control, c.Experiment)
	}
	if c := check(t, rep, "more than the baseline"); c.Control != 0 || c.Experiment <= 0 {
		t.Errorf("503s: baseline %v, fault phase %v", c.Control, c.Experiment)
	}
}

// Live traffic: the gateway puts requests in cohorts and measures them;
// the experiment reads its metrics.
func TestRunLive(t *testing.T) {
	s := newTestSystem(t)
	cat := discovery.NewCatalog()
	cat.Upsert(discovery.Instance{ID: "svc-1", Service: "svc", Addr: s.srv.Listener.Addr().String(), State: discovery.StateServing})
	tr, err := client.New(cat, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	gw := gateway.New(cat, tr)
	gw.Logger = slog.New(slog.DiscardHandler)
	if gw.Chaos, err = chaos.NewVerifier(s.signer.PublicKey(), "gateway"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if gw.CohortMetrics, err = telemetry.NewCohortMetrics(reg); err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(gw)
	t.Cleanup(front.Close)
	metricsSrv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(metricsSrv.Close)
	s.targets(t, metricsSrv.Listener.Addr().String())

	// Users: 60 requests a second through the gateway until the end.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		tick := time.NewTicker(time.Second / 60)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			<-tick.C
			req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/svc/titles/1", nil)
			req.Header.Set("X-Request-Id", fmt.Sprint("user-request-", i))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	e, err := Parse("live.yaml", []byte(`
warmup: 0s
baseline: 2s
duration: 3s
traffic:
  live: {share: 0.25, by: request}
fault: {request: 'svc:error=503'}
hypothesis:
  - {name: answers, route: default, success: {tolerance: 0.01}}
  - {name: latency, route: default, latency: {max: 1s}}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := (&Runner{System: s, Dir: s.dir, Gateways: []string{front.URL}}).Run(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Log(table.String())
	if rep.Verdict != Failed {
		t.Errorf("verdict %s, want failed", rep.Verdict)
	}
	if c := check(t, rep, "answers"); c.Control != 1 || c.Experiment != 0 {
		t.Errorf("answers: control %v, experiment %v", c.Control, c.Experiment)
	}
	if c := check(t, rep, "latency"); !c.Held {
		t.Errorf("latency %+v", c)
	}
	if rep.Requests["control"] < 20 || rep.Requests["experiment"] < 20 {
		t.Errorf("requests %v: want about 45 a cohort (a quarter of 180)", rep.Requests)
	}
	// The report counts what the gateway counted, and the experiment is
	// over at the gateway: no request joins a cohort any more.
	stop()
	wg.Wait()
	counted := liveTotal(t, metricsSrv.URL)
	if reported := rep.Requests["control"] + rep.Requests["experiment"]; reported != counted {
		t.Errorf("the report says %d requests in the cohorts, the gateway counted %d", reported, counted)
	}
	for range 20 {
		resp, err := http.Get(front.URL + "/svc/titles/1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if after := liveTotal(t, metricsSrv.URL); after != counted {
		t.Errorf("the gateway still assigns cohorts after the run: %d requests counted, then %d", counted, after)
	}
}

// liveTotal sums the gateway's cohort counters.
func liveTotal(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, cohortRequests+"{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += int(v)
		}
	}
	return total
}

// A request fault aimed at a service the system does not have would never
// fire: the run is refused before anything starts, with the file position
// and the service meant.
func TestRunRefusesUnknownFaultService(t *testing.T) {
	s := newTestSystem(t)
	e, err := Parse("test.yaml", []byte(synthetic+`
duration: 2s
fault: {request: 'svx:delay=1s;gateway>sv:reset'}
hypothesis:
  - {name: answers, route: GET /titles/, success: {tolerance: 0.01}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	rep, err := (&Runner{System: s, Dir: s.dir, Log: &log}).Run(context.Background(), e)
	if err == nil {
		t.Fatalf("ran with a fault on no service: %+v", rep)
	}
	for _, want := range []string{
		`fault.request: "sv" is not a service of the running system; did you mean svc?`,
		`fault.request: "svx" is not a service of the running system; did you mean svc?`,
		"test.yaml:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if log.String() != "" {
		t.Errorf("the run started:\n%s", log.String())
	}

	// A monkey's services and exclusions too: it would pick nothing, or
	// not spare the service meant.
	e, err = Parse("test.yaml", []byte(synthetic+`
duration: 2s
fault:
  instances: {every: 400ms, services: [svx], exclude: [gatewy]}
hypothesis:
  - {name: answers, route: GET /titles/, success: {tolerance: 0.01}}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&Runner{System: s, Dir: s.dir, Log: &log}).Run(context.Background(), e)
	for _, want := range []string{
		`fault.instances.exclude: "gatewy" is not a service of the running system; did you mean gateway?`,
		`fault.instances.services: "svx" is not a service of the running system; did you mean svc?`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
