package telemetry_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/telemetry"
)

func TestRouteMetricsOnMetricsEndpoint(t *testing.T) {
	m := telemetry.New("gateway", "gateway-1")
	rm, err := telemetry.NewRouteMetrics(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 { // racing first uses share one series
		wg.Go(func() {
			rm.ObserveRoute("/v1/titles/", "catalog", 200, 3*time.Millisecond)
		})
	}
	wg.Wait()
	rm.ObserveRoute("/v1/titles/", "catalog", 429, time.Millisecond)
	rm.ObserveRoute("default", "", 404, time.Millisecond)
	rm.ObserveRoute("default", "ratings", 999, time.Millisecond) // out of range: exact label still

	got := samples(t, scrape(t, m.Handler()), "shoal_gateway_requests_total")
	want := `shoal_gateway_requests_total{code="200",route="/v1/titles/",service="catalog"} 4
shoal_gateway_requests_total{code="404",route="default",service=""} 1
shoal_gateway_requests_total{code="429",route="/v1/titles/",service="catalog"} 1
shoal_gateway_requests_total{code="999",route="default",service="ratings"} 1
`
	if got != want {
		t.Errorf("requests:\n%s\nwant:\n%s", got, want)
	}
	mfs := scrape(t, m.Handler())
	dur := samples(t, mfs, "shoal_gateway_request_duration_seconds")
	for _, w := range []string{
		`shoal_gateway_request_duration_seconds_count{route="/v1/titles/",service="catalog"} 5`,
		`shoal_gateway_request_duration_seconds_bucket{route="/v1/titles/",service="catalog",le="0.005"} 5`,
		`shoal_gateway_request_duration_seconds_count{route="default",service=""} 1`,
	} {
		if !strings.Contains(dur, w) {
			t.Errorf("durations lack %s:\n%s", w, dur)
		}
	}
	if _, err := telemetry.NewRouteMetrics(m.Registry()); err == nil {
		t.Errorf("registering the route metrics twice: no error")
	}
}

func BenchmarkObserveRoute(b *testing.B) {
	m := telemetry.New("gateway", "gateway-1")
	rm, err := telemetry.NewRouteMetrics(m.Registry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rm.ObserveRoute("/v1/titles/", "catalog", 200, time.Millisecond)
	}
}
