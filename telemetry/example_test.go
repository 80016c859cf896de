package telemetry_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-dev/shoal/balance"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/resilience"
	"github.com/shoal-dev/shoal/telemetry"
)

// printMetrics scrapes url and prints the sample lines whose metric name
// starts with one of prefixes.
func printMetrics(url string, prefixes ...string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, p := range prefixes {
			if strings.HasPrefix(sc.Text(), p) {
				fmt.Println(sc.Text())
				break
			}
		}
	}
}

// A service exports the state of its policies: here one of catalog's two
// instances has its breaker open (ejected), and the server is at its
// concurrency limit: requests queue for a slot, and some were refused.
func Example() {
	m := telemetry.New("player", "player-1")
	// In a service, the shoal package adds its *client.Transport and
	// *shoal.Service; functions stand in for them here.
	m.AddDependencies(telemetry.DependencySourceFunc(func() []client.DependencyStats {
		return []client.DependencyStats{{
			Service: "catalog",
			Hosts: []balance.HostStats{
				{ID: "catalog-1", Breaker: balance.BreakerClosed},
				{ID: "catalog-2", Breaker: balance.BreakerOpen, Ejected: true, Ejections: 1},
			},
			Calls: 120, Failures: 3, BudgetLeft: 4,
		}}
	}))
	m.AddLimiter(telemetry.LimiterSourceFunc(func() resilience.LimiterStats {
		return resilience.LimiterStats{Limit: 8, InFlight: 8, Admitted: 400, Rejected: 25, Queued: 6, Waited: 120, Late: 5}
	}))

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	printMetrics(srv.URL+"/metrics",
		"shoal_client_instance_breaker_state", "shoal_client_instance_ejected",
		"shoal_client_budget_left", "shoal_server_")
	// Output:
	// shoal_client_budget_left{service="catalog"} 4
	// shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="closed"} 1
	// shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="half_open"} 0
	// shoal_client_instance_breaker_state{instance_id="catalog-1",service="catalog",state="open"} 0
	// shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="closed"} 0
	// shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="half_open"} 0
	// shoal_client_instance_breaker_state{instance_id="catalog-2",service="catalog",state="open"} 1
	// shoal_client_instance_ejected{instance_id="catalog-1",service="catalog"} 0
	// shoal_client_instance_ejected{instance_id="catalog-2",service="catalog"} 1
	// shoal_server_abandoned_total 0
	// shoal_server_admitted_total 400
	// shoal_server_concurrency_cap 0
	// shoal_server_concurrency_limit 8
	// shoal_server_in_flight 8
	// shoal_server_overloaded 0
	// shoal_server_overloads_total 0
	// shoal_server_queued 6
	// shoal_server_rejected_late_total 5
	// shoal_server_rejected_total 25
	// shoal_server_waited_total 120
}

// The middleware records the RED metrics of the service's own handler;
// /metrics is served beside it, not through it, so scrapes are not counted.
func ExampleMetrics_Middleware() {
	m := telemetry.New("catalog", "catalog-1")
	api := http.NewServeMux()
	api.HandleFunc("GET /titles/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "0" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, `{"title":"Metropolis"}`)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("/", m.Middleware(api))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/titles/1", "/titles/2", "/titles/0"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	printMetrics(srv.URL+"/metrics", "shoal_http_requests_total", "shoal_http_request_duration_seconds_count")
	// Output:
	// shoal_http_request_duration_seconds_count{code="200",method="GET",route=""} 2
	// shoal_http_request_duration_seconds_count{code="404",method="GET",route=""} 1
	// shoal_http_requests_total{code="200",method="GET",route=""} 2
	// shoal_http_requests_total{code="404",method="GET",route=""} 1
}
