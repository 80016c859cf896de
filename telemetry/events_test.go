package telemetry_test

import (
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/telemetry"
)

func TestEventMetricsOnMetricsEndpoint(t *testing.T) {
	m := telemetry.New("playback", "playback-1")
	em, err := telemetry.NewEventMetrics(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 { // the outbox's workers report at once
		wg.Go(func() { em.Delivery("progress", "history", "failed") })
	}
	wg.Wait()
	em.Delivery("progress", "history", "panicked")
	em.Delivery("progress", "recommendations", "delivered")
	em.DeadLettered("progress", "history")
	em.DeadLetters(4)
	em.DeadLetters(3)

	got := samples(t, scrape(t, m.Handler()), "shoal_events_")
	want := `shoal_events_dead_lettered_total{service="history",topic="progress"} 1
shoal_events_dead_letters 3
shoal_events_deliveries_total{outcome="delivered",service="recommendations",topic="progress"} 1
shoal_events_deliveries_total{outcome="failed",service="history",topic="progress"} 3
shoal_events_deliveries_total{outcome="panicked",service="history",topic="progress"} 1
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := telemetry.NewEventMetrics(m.Registry()); err == nil {
		t.Error("registering the event metrics twice: no error")
	}
}
