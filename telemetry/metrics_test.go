package telemetry_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

// fakeDeps is a DependencySource that reports a fixed snapshot and counts
// the calls, so a test can check it is read once per scrape.
type fakeDeps struct {
	stats []client.DependencyStats
	calls int
}

func (f *fakeDeps) Dependencies() []client.DependencyStats {
	f.calls++
	return f.stats
}

// fakeLimiter is a LimiterSource that reports a fixed snapshot.
type fakeLimiter resilience.LimiterStats

func (f fakeLimiter) Admission() resilience.LimiterStats { return resilience.LimiterStats(f) }

func snapshot() []client.DependencyStats {
	return []client.DependencyStats{{
		Service: "catalog",
		Hosts: []balance.HostStats{
			{ID: "catalog-1", EWMA: 2500 * time.Microsecond, InFlight: 3, Breaker: balance.BreakerClosed, Ejections: 1},
			{ID: "catalog-2", EWMA: 40 * time.Millisecond, Ejected: true, Breaker: balance.BreakerOpen, Ejections: 4, EjectionsRefused: 2},
			{ID: "catalog-3", EWMA: 0, InFlight: 1, Breaker: balance.BreakerHalfOpen, Ejections: 5},
		},
		Calls: 1000, Failures: 12, Retries: 30,
		BudgetLeft: 7, BudgetExhausted: 5,
		ThrottleRate: 0.25, Throttled: 9,
		InFlight: 4, MaxInFlight: 64, BulkheadFull: 2,
		Hedges: 20, HedgeWins: 6,
	}, {
		Service: "users",
		Calls:   3,
	}}
}

func TestPolicyMetrics(t *testing.T) {
	deps := &fakeDeps{stats: snapshot()}
	m := telemetry.New("player", "player-1")
	m.AddDependencies(deps)
	m.AddLimiter(fakeLimiter{
		Limit: 40, InFlight: 40, Admitted: 5000, Rejected: 17,
		Queued: 9, Waited: 300, Late: 4, Abandoned: 3, Overloaded: true, Overloads: 2, Cap: 12,
	})
	silence(t)
	client.Async(t.Context(), time.Second, func(context.Context) (int, error) { panic("bug") }, nil)()

	mfs := scrape(t, m.Handler())
	if deps.calls != 1 {
		t.Errorf("Dependencies called %d times in one scrape, want 1", deps.calls)
	}
	got := exposition(t, mfs, "shoal_client_", "shoal_server_", "shoal_service_")
	// AsyncPanics counts the whole process's, those of earlier runs
	// (-count) included.
	want := `# HELP shoal_client_async_panics_total Panics recovered on goroutines client.Async started (in a call or its fallback), in the whole process.
# TYPE shoal_client_async_panics_total counter
shoal_client_async_panics_total ` + itoa(client.AsyncPanics()) + `
# HELP shoal_client_budget_exhausted_total Retries the retry budget refused.
# TYPE shoal_client_budget_exhausted_total counter
shoal_client_budget_exhausted_total{service="catalog"} 5
shoal_client_budget_exhausted_total{service="users"} 0
# HELP shoal_client_budget_left Retries the retry budget would allow now; 0 means retries are being refused.
# TYPE shoal_client_budget_left gauge
shoal_client_budget_left{service="catalog"} 7
shoal_client_budget_left{service="users"} 0
# HELP shoal_client_bulkhead_full_total Calls rejected because the bulkhead was full.
# TYPE shoal_client_bulkhead_full_total counter
shoal_client_bulkhead_full_total{service="catalog"} 2
shoal_client_bulkhead_full_total{service="users"} 0
# HELP shoal_client_calls_total Calls made to the service (RoundTrips, not attempts).
# TYPE shoal_client_calls_total counter
shoal_client_calls_total{service="catalog"} 1000
shoal_client_calls_total{service="users"} 3
# HELP shoal_client_failures_total Calls to the service that ended in an error or a 5xx, after retries and hedges.
# TYPE shoal_client_failures_total counter
shoal_client_failures_total{service="catalog"} 12
shoal_client_failures_total{service="users"} 0
# HELP shoal_client_hedge_wins_total Hedged attempts whose answer was used.
# TYPE shoal_client_hedge_wins_total counter
shoal_client_hedge_wins_total{service="catalog"} 6
shoal_client_hedge_wins_total{service="users"} 0
# HELP shoal_client_hedges_total Hedged attempts sent because an attempt passed the latency threshold.
# TYPE shoal_client_hedges_total counter
shoal_client_hedges_total{service="catalog"} 20
shoal_client_hedges_total{service="users"} 0
# HELP shoal_client_in_flight Calls to the service in flight now.
# TYPE shoal_client_in_flight gauge
shoal_client_in_flight{service="catalog"} 4
shoal_client_in_flight{service="users"} 0
# HELP shoal_client_instance_breaker_state Circuit breaker state of the instance: 1 for the current state (closed, open or half_open), 0 for the others.
# TYPE shoal_client_instance_breaker_state gauge
shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="closed"} 1
shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="half_open"} 0
shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="open"} 0
shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="closed"} 0
shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="half_open"} 0
shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="open"} 1
shoal_client_instance_breaker_state{instance_id="catalog-3",service="catalog",state="closed"} 0
shoal_client_instance_breaker_state{instance_id="catalog-3",service="catalog",state="half_open"} 1
shoal_client_instance_breaker_state{instance_id="catalog-3",service="catalog",state="open"} 0
# HELP shoal_client_instance_ejected 1 if the instance is ejected by outlier detection now (it gets traffic only when nothing else is left), else 0.
# TYPE shoal_client_instance_ejected gauge
shoal_client_instance_ejected{instance_id="catalog-1",service="catalog"} 0
shoal_client_instance_ejected{instance_id="catalog-2",service="catalog"} 1
shoal_client_instance_ejected{instance_id="catalog-3",service="catalog"} 0
# HELP shoal_client_instance_ejections_refused_total Ejections of the instance refused because the cap on the ejected fraction was reached.
# TYPE shoal_client_instance_ejections_refused_total counter
shoal_client_instance_ejections_refused_total{instance_id="catalog-1",service="catalog"} 0
shoal_client_instance_ejections_refused_total{instance_id="catalog-2",service="catalog"} 2
shoal_client_instance_ejections_refused_total{instance_id="catalog-3",service="catalog"} 0
# HELP shoal_client_instance_ejections_total Times the instance was ejected by outlier detection.
# TYPE shoal_client_instance_ejections_total counter
shoal_client_instance_ejections_total{instance_id="catalog-1",service="catalog"} 1
shoal_client_instance_ejections_total{instance_id="catalog-2",service="catalog"} 4
shoal_client_instance_ejections_total{instance_id="catalog-3",service="catalog"} 5
# HELP shoal_client_instance_ewma_seconds Peak-EWMA latency estimate of the instance, used by the balancer; 0 before the first sample.
# TYPE shoal_client_instance_ewma_seconds gauge
shoal_client_instance_ewma_seconds{instance_id="catalog-1",service="catalog"} 0.0025
shoal_client_instance_ewma_seconds{instance_id="catalog-2",service="catalog"} 0.04
shoal_client_instance_ewma_seconds{instance_id="catalog-3",service="catalog"} 0
# HELP shoal_client_instance_in_flight Calls to the instance in flight now.
# TYPE shoal_client_instance_in_flight gauge
shoal_client_instance_in_flight{instance_id="catalog-1",service="catalog"} 3
shoal_client_instance_in_flight{instance_id="catalog-2",service="catalog"} 0
shoal_client_instance_in_flight{instance_id="catalog-3",service="catalog"} 1
# HELP shoal_client_max_in_flight The bulkhead's cap on calls in flight; 0 means no cap.
# TYPE shoal_client_max_in_flight gauge
shoal_client_max_in_flight{service="catalog"} 64
shoal_client_max_in_flight{service="users"} 0
# HELP shoal_client_retries_total Attempts after the first to the service, hedges excluded.
# TYPE shoal_client_retries_total counter
shoal_client_retries_total{service="catalog"} 30
shoal_client_retries_total{service="users"} 0
# HELP shoal_client_throttle_rate Probability, in [0, 1], that the adaptive throttle rejects a call at the caller now.
# TYPE shoal_client_throttle_rate gauge
shoal_client_throttle_rate{service="catalog"} 0.25
shoal_client_throttle_rate{service="users"} 0
# HELP shoal_client_throttled_total Calls the adaptive throttle rejected at the caller, without sending them.
# TYPE shoal_client_throttled_total counter
shoal_client_throttled_total{service="catalog"} 9
shoal_client_throttled_total{service="users"} 0
# HELP shoal_server_abandoned_total Requests whose caller gave up while they waited for a slot (also in shoal_server_rejected_total).
# TYPE shoal_server_abandoned_total counter
shoal_server_abandoned_total 3
# HELP shoal_server_admitted_total Requests admitted by the admission control, at once or after waiting.
# TYPE shoal_server_admitted_total counter
shoal_server_admitted_total 5000
# HELP shoal_server_concurrency_cap The cap on requests in flight below the limit while requests wait (the process queues work inside); 0 means no cap.
# TYPE shoal_server_concurrency_cap gauge
shoal_server_concurrency_cap 12
# HELP shoal_server_concurrency_limit The adaptive concurrency limit now; a request beyond it waits for a slot while its deadline allows, else is rejected with 503 at once.
# TYPE shoal_server_concurrency_limit gauge
shoal_server_concurrency_limit 40
# HELP shoal_server_in_flight Requests admitted and not finished; at the concurrency limit (or the cap), new requests queue or are rejected.
# TYPE shoal_server_in_flight gauge
shoal_server_in_flight 40
# HELP shoal_server_overloaded 1 while the instance is overloaded (more requests arrive than it completes): a request then waits only if nobody waits ahead of it or it would be served within 5ms; else 0.
# TYPE shoal_server_overloaded gauge
shoal_server_overloaded 1
# HELP shoal_server_overloads_total Times the instance became overloaded.
# TYPE shoal_server_overloads_total counter
shoal_server_overloads_total 2
# HELP shoal_server_queued Requests waiting for a slot now.
# TYPE shoal_server_queued gauge
shoal_server_queued 9
# HELP shoal_server_rejected_late_total Requests refused after waiting (also in shoal_server_rejected_total): the wait their deadline allowed ran out, or overload began and the backlog was shed.
# TYPE shoal_server_rejected_late_total counter
shoal_server_rejected_late_total 4
# HELP shoal_server_rejected_total Requests not admitted (503 with Retry-After, unprocessed): refused at once, refused after waiting, or given up by their caller while waiting.
# TYPE shoal_server_rejected_total counter
shoal_server_rejected_total 17
# HELP shoal_server_waited_total Requests admitted after waiting for a slot.
# TYPE shoal_server_waited_total counter
shoal_server_waited_total 300
# HELP shoal_service_info Always 1; its labels name the Shoal service and the instance that exports these metrics.
# TYPE shoal_service_info gauge
shoal_service_info{service_instance_id="player-1",service_name="player"} 1
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/metrics (-want +got):\n%s", diff)
	}
}

// silence sends the default logger's output (Async's panic log) nowhere
// for the test.
func silence(t *testing.T) {
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { slog.SetDefault(prev) })
}

// Counters and gauges read the source at every scrape: nothing is cached.
func TestPolicyMetricsFollowSource(t *testing.T) {
	var stats resilience.LimiterStats
	m := telemetry.New("player", "player-1")
	m.AddLimiter(telemetry.LimiterSourceFunc(func() resilience.LimiterStats { return stats }))
	for _, s := range []resilience.LimiterStats{
		{Limit: 10, InFlight: 1, Admitted: 1},
		{Limit: 5, InFlight: 5, Admitted: 90, Rejected: 3},
		{Limit: 4, InFlight: 3, Admitted: 95, Rejected: 9, Queued: 7, Waited: 40, Late: 2, Abandoned: 1, Overloaded: true, Overloads: 1, Cap: 3},
	} {
		stats = s
		got := samples(t, scrape(t, m.Handler()), "shoal_server_")
		overloaded := "0"
		if s.Overloaded {
			overloaded = "1"
		}
		want := strings.Join([]string{
			"shoal_server_abandoned_total " + itoa(s.Abandoned),
			"shoal_server_admitted_total " + itoa(s.Admitted),
			"shoal_server_concurrency_cap " + itoa(uint64(s.Cap)),
			"shoal_server_concurrency_limit " + itoa(uint64(s.Limit)),
			"shoal_server_in_flight " + itoa(uint64(s.InFlight)),
			"shoal_server_overloaded " + overloaded,
			"shoal_server_overloads_total " + itoa(s.Overloads),
			"shoal_server_queued " + itoa(uint64(s.Queued)),
			"shoal_server_rejected_late_total " + itoa(s.Late),
			"shoal_server_rejected_total " + itoa(s.Rejected),
			"shoal_server_waited_total " + itoa(s.Waited),
		}, "\n") + "\n"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("after %+v (-want +got):\n%s", s, diff)
		}
	}
}

func TestBreakerState(t *testing.T) {
	tests := []struct {
		name, breaker, want string
	}{
		{"closed", balance.BreakerClosed, `closed 1, half_open 0, open 0`},
		{"open", balance.BreakerOpen, `closed 0, half_open 0, open 1`},
		{"half open", balance.BreakerHalfOpen, `closed 0, half_open 1, open 0`},
		{"no breaker", "", ``},
		{"unknown state", "tripped", `closed 0, half_open 0, open 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := telemetry.New("player", "player-1")
			m.AddDependencies(telemetry.DependencySourceFunc(func() []client.DependencyStats {
				return []client.DependencyStats{{
					Service: "catalog",
					Hosts:   []balance.HostStats{{ID: "catalog-1", Breaker: tt.breaker}},
				}}
			}))
			mf := scrape(t, m.Handler())["shoal_client_instance_breaker_state"]
			var got []string
			for _, mt := range mf.GetMetric() {
				var state string
				for _, l := range mt.GetLabel() {
					if l.GetName() == "state" {
						state = l.GetValue()
					}
				}
				got = append(got, state+" "+ftoa(mt.GetGauge().GetValue()))
			}
			if s := strings.Join(got, ", "); s != tt.want {
				t.Errorf("breaker %q: got %q, want %q", tt.breaker, s, tt.want)
			}
		})
	}
}

// Without sources, only the info series and the process's count of
// client.Async panics are exported: no empty families.
func TestNoSources(t *testing.T) {
	m := telemetry.New("player", "player-1")
	mfs := scrape(t, m.Handler())
	got := samples(t, mfs, "shoal_")
	want := "shoal_client_async_panics_total " + itoa(client.AsyncPanics()) + "\n" +
		`shoal_service_info{service_instance_id="player-1",service_name="player"} 1` + "\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
	// The runtime and process collectors are in the same registry.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

// A series that cannot be gathered — one service in two sources, a label
// value that is not UTF-8 — is left out and counted, and the rest of the
// scrape is still served.
func TestBadSeriesDoNotFailScrape(t *testing.T) {
	m := telemetry.New("player", "player-1")
	dup := []client.DependencyStats{{Service: "catalog", Calls: 1}}
	m.AddDependencies(telemetry.DependencySourceFunc(func() []client.DependencyStats { return dup }))
	m.AddDependencies(telemetry.DependencySourceFunc(func() []client.DependencyStats { return dup }))
	m.AddDependencies(telemetry.DependencySourceFunc(func() []client.DependencyStats {
		return []client.DependencyStats{{Service: "bad\xff", Calls: 2}, {Service: "users", Calls: 3}}
	}))
	scrape(t, m.Handler())
	// The error counter counts the previous scrapes: look at the second.
	mfs := scrape(t, m.Handler())
	got := samples(t, mfs, "shoal_client_calls_total", "promhttp_metric_handler_errors_total")
	want := `promhttp_metric_handler_errors_total{cause="encoding"} 0
promhttp_metric_handler_errors_total{cause="gathering"} 1
shoal_client_calls_total{service="catalog"} 1
shoal_client_calls_total{service="users"} 3
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/metrics (-want +got):\n%s", diff)
	}
}

func TestAddLimiterTwicePanics(t *testing.T) {
	m := telemetry.New("player", "player-1")
	m.AddLimiter(fakeLimiter{})
	defer func() {
		if recover() == nil {
			t.Error("second AddLimiter did not panic")
		}
	}()
	m.AddLimiter(fakeLimiter{})
}

// Sources may be added while scrapes run (run with -race).
func TestAddDuringScrape(t *testing.T) {
	m := telemetry.New("player", "player-1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			m.AddDependencies(&fakeDeps{})
		}
	}()
	for range 5 {
		scrape(t, m.Handler())
	}
	<-done
}

// The client's Transport is a DependencySource as it is.
var _ telemetry.DependencySource = (*client.Transport)(nil)
